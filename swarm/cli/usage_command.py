"""`swarm usage`: tokens per tenant and model, energy and cost per million tokens, over a window."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

from swarm.cli.security_flags import add_client_flags, client_api_key, tls_from_args
from swarm.client import SwarmCallError
from swarm.client.usage_client import fetch_usage
from swarm.shared.addresses import DEFAULT_COORDINATOR
from swarm.shared.usage_cost import cost_report
from swarm.shared.usage_types import CostFigures, CostReport, TokenCounts, UsageReport

HOUR_S = 3600
_AGO = re.compile(r"^(\d+)([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("usage", help="tokens per key and model, and energy and cost per million tokens")
    p.add_argument(
        "--since",
        default="",
        help="a window: 30m, 6h, 7d back from now, or a date/time (2026-12-01, 2026-12-01T09:00); usage is kept by "
        "the hour, so it starts on the hour (default: all that is kept)",
    )
    p.add_argument("--key", default="", help="only this key's (tenant's) usage, by its name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--coordinator",
        default=None,
        help=f"coordinator HOST:PORT, or several comma-separated (default $SWARM_COORDINATOR or {DEFAULT_COORDINATOR})",
    )
    add_client_flags(p)
    p.set_defaults(run=run_usage)


def since_hour(text: str, now_s: float | None = None) -> int:
    """The unix hour a --since value starts in; 0 for "" (everything kept). ValueError if it is neither form."""
    if not text:
        return 0
    now = time.time() if now_s is None else now_s
    ago = _AGO.match(text.strip())
    if ago:
        return int((now - int(ago.group(1)) * _UNIT_S[ago.group(2)]) // HOUR_S)
    return int(datetime.fromisoformat(text.strip()).timestamp() // HOUR_S)


def run_usage(args: argparse.Namespace) -> int:
    try:
        since = since_hour(args.since)
    except ValueError:
        print(f"swarm usage: --since {args.since!r} is neither 30m/6h/7d nor a date", file=sys.stderr)
        return 2
    try:
        usage = fetch_usage(args.coordinator, since, args.key, api_key=client_api_key(args), tls=tls_from_args(args))
    except SwarmCallError as exc:
        print(f"swarm usage: {exc}", file=sys.stderr)
        return 1
    costs = cost_report(usage)
    print(json.dumps(usage_json(usage, costs), indent=2) if args.json else "\n".join(usage_lines(usage, costs)))
    return 0


def _figures(figures: CostFigures | None) -> dict[str, Any]:
    figures = figures or CostFigures()
    return {
        **asdict(figures),
        "cost_per_million_tokens": figures.cost_per_million,
        "wh_per_million_tokens": figures.wh_per_million,
    }


def usage_json(usage: UsageReport, costs: CostReport) -> dict[str, Any]:
    def group(counts: dict[str, TokenCounts], figures: dict[str, CostFigures]) -> dict[str, Any]:
        return {name: {**asdict(c), **_figures(figures.get(name))} for name, c in counts.items()}

    return {
        "since_hour": usage.since_hour,
        "swarm": {"tokens_per_second": costs.tokens_per_second, **_figures(costs.swarm)},
        "tenants": group(usage.by_tenant(), costs.by_tenant),
        "models": group(usage.by_model(), costs.by_model),
        "workers": {
            w.worker: {
                "busy_s": w.busy_s,
                "watts": w.watts,
                "cost_per_hour": w.cost_per_hour,
                **_figures(costs.by_worker.get(w.worker)),
            }
            for w in usage.workers
        },
        "rows": [{"tenant": r.tenant, "model": r.model, "worker": r.worker, **asdict(r.tokens)} for r in usage.rows],
    }


def _per_million(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def usage_lines(usage: UsageReport, costs: CostReport) -> list[str]:
    window = "all kept" if usage.since_hour == 0 else f"since {datetime.fromtimestamp(usage.since_hour * HOUR_S)}"
    swarm = costs.swarm
    lines = [
        f"usage {window}: {costs.tokens_per_second:.2f} tokens/s, "
        f"cost per million tokens {_per_million(swarm.cost_per_million)}, "
        f"energy per million tokens {_per_million(swarm.wh_per_million, 1)} Wh",
        "",
        f"{'KEY':<24} {'REQUESTS':>9} {'PROMPT':>10} {'CACHED':>10} {'COMPLETION':>11} {'WH':>9} {'COST':>9} "
        f"{'COST/M':>9}",
    ]
    for name, counts in usage.by_tenant().items():
        cost = costs.by_tenant.get(name, CostFigures())
        lines.append(
            f"{name or '(no key)':<24} {counts.requests:>9} {counts.prompt:>10} {counts.cached_prompt:>10} "
            f"{counts.completion:>11} {cost.energy_wh:>9.3f} {cost.cost:>9.4f} {_per_million(cost.cost_per_million):>9}"
        )
    lines += ["", f"{'MODEL':<24} {'REQUESTS':>9} {'PROMPT':>10} {'COMPLETION':>11} {'WH/M':>9} {'COST/M':>9}"]
    for name, counts in usage.by_model().items():
        cost = costs.by_model.get(name, CostFigures())
        lines.append(
            f"{name:<24} {counts.requests:>9} {counts.prompt:>10} {counts.completion:>11} "
            f"{_per_million(cost.wh_per_million, 1):>9} {_per_million(cost.cost_per_million):>9}"
        )
    lines += ["", f"{'WORKER':<24} {'BUSY S':>9} {'WATTS':>7} {'COST/H':>8} {'TOKENS':>9} {'WH/M':>9} {'COST/M':>9}"]
    for busy in usage.workers:
        cost = costs.by_worker.get(busy.worker, CostFigures())
        lines.append(
            f"{busy.worker:<24} {busy.busy_s:>9.1f} {busy.watts:>7g} {busy.cost_per_hour:>8g} {cost.tokens:>9} "
            f"{_per_million(cost.wh_per_million, 1):>9} {_per_million(cost.cost_per_million):>9}"
        )
    return lines
