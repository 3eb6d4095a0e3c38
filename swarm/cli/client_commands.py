"""`swarm generate`, `swarm status` and `swarm models`: the client side of the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from swarm.cli.security_flags import add_client_flags, client_api_key, tls_from_args
from swarm.cli.watch_commands import add_refresh_flags, status_frames, top_table, watch
from swarm.client import GenerateOptions, SwarmCallError, SwarmClient
from swarm.shared.addresses import DEFAULT_COORDINATOR
from swarm.shared.types import Finished, SwarmStatus, TextPiece
from swarm.wire.json_views import status_to_json


def add_parsers(commands: Any) -> None:
    coordinator_help = (
        "coordinator HOST:PORT, or several comma-separated to fail over between "
        f"(default $SWARM_COORDINATOR or {DEFAULT_COORDINATOR})"
    )
    g = commands.add_parser("generate", help="generate text, streamed to the terminal as it arrives")
    g.add_argument("prompt")
    g.add_argument("--coordinator", default=None, help=coordinator_help)
    add_client_flags(g)
    g.add_argument("--model", default="", help="model name (default: the swarm's default model)")
    g.add_argument("--max-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=None, help="0 is greedy (default 0.8)")
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    g.set_defaults(run=run_generate)

    s = commands.add_parser("status", help="show the workers and the queue")
    s.add_argument("--coordinator", default=None, help=coordinator_help)
    add_client_flags(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--watch", action="store_true", help="refresh the table in place until Ctrl-C")
    add_refresh_flags(s, default_interval_s=2.0)
    s.set_defaults(run=run_status)

    m = commands.add_parser("models", help="list the models the swarm serves")
    m.add_argument("--coordinator", default=None, help=coordinator_help)
    add_client_flags(m)
    m.set_defaults(run=run_models)

    t = commands.add_parser("top", help="the workers, busiest first, refreshed until Ctrl-C")
    t.add_argument("--coordinator", default=None, help=coordinator_help)
    add_client_flags(t)
    add_refresh_flags(t, default_interval_s=1.0)
    t.set_defaults(run=run_top)


def open_client(args: argparse.Namespace, retries: int = 5) -> SwarmClient:
    """A client of the coordinators the flags name, with their API key and TLS files; exits 2 on a bad flag."""
    try:
        return SwarmClient(args.coordinator, api_key=client_api_key(args), tls=tls_from_args(args), retries=retries)
    except ValueError as exc:
        print(f"swarm {args.command}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_generate(args: argparse.Namespace) -> int:
    options = GenerateOptions(
        model=args.model,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        seed=args.seed,
        stop=tuple(args.stop),
    )
    with open_client(args) as client:
        try:
            for event in client.stream(args.prompt, options):
                if isinstance(event, TextPiece):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, Finished):
                    sys.stdout.write("\n")
                    print(
                        f"[{event.reason.value}: {event.prompt_tokens} prompt + {event.completion_tokens} "
                        f"generated tokens, worker {event.worker_id}]",
                        file=sys.stderr,
                    )
        except SwarmCallError as exc:
            print(f"swarm generate: {exc}", file=sys.stderr)
            return 1
    return 0


def status_table(status: SwarmStatus) -> str:
    header = ("WORKER", "ADDRESS", "MODEL", "SERVES", "STATE", "SLOTS", "TOK/S", "HEARTBEAT")
    rows = [header] + [
        (
            w.info.worker_id,
            w.info.address,
            w.info.model,
            w.info.role,
            w.shown_state,
            f"{w.load.slots_busy}/{w.info.slots}",
            f"{w.load.tokens_per_second:.1f}",
            f"{w.heartbeat_age_s:.1f}s ago" if w.heartbeat_age_s >= 0 else "never",
        )
        for w in status.workers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    up = sum(1 for w in status.workers if w.up)
    lines.append(
        f"\n{up} of {len(status.workers)} workers up; {status.queue_depth} requests queued; "
        f"default model: {status.default_model or '-'}"
    )
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    if args.watch:
        with open_client(args, retries=0) as watched:
            return watch(status_frames(watched, status_table), args.interval, args.count, sys.stdout)
    with open_client(args) as client:
        try:
            status = client.status()
        except SwarmCallError as exc:
            print(f"swarm status: cannot reach coordinator {','.join(client.addresses)}: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(status_to_json(status), indent=2) if args.json else status_table(status))
    return 0


def run_top(args: argparse.Namespace) -> int:
    with open_client(args, retries=0) as client:
        return watch(status_frames(client, top_table), args.interval, args.count, sys.stdout)


def run_models(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        try:
            models = client.list_models()
        except SwarmCallError as exc:
            print(f"swarm models: {exc}", file=sys.stderr)
            return 1
    for model in models:
        marker = " (default)" if model.is_default else ""
        marker += " (pinned)" if model.pinned else ""
        state = f"{model.state}, " if model.state else ""
        where = f" on {', '.join(model.workers)}" if model.workers else ""
        print(f"{model.name}{marker}: {state}{model.workers_up} workers up{where}, context {model.context_length}")
    return 0
