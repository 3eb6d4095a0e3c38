"""The capacity benchmark's report: the per-step table, the latency the coordinator adds, failures, profiles."""

from __future__ import annotations

import argparse
import math
import os
from collections import Counter

from swarm.bench.capacity_metrics import StepResult


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def render_table(rows: list[StepResult]) -> str:
    header = (
        "| path | streams | offered tok/s | relayed tok/s | window s | completed / cut / failed "
        "| token latency p50 / p99 ms | TTFT p50 / p99 ms | coordinator CPU % (kernel) | coordinator CPU µs/token "
        "| clients CPU % | workers CPU % | redis CPU % | these four CPU % | machine busy % |"
    )
    lines = [header, "|" + " --- |" * 2 + " ---: |" * 13]
    for r in rows:
        cpu = r.cpu_percent
        per_token = f"{r.coordinator_us_per_token:.0f}" if r.path != "direct" else "-"
        lines.append(
            f"| {r.path} | {r.streams} | {r.offered_tps:,.0f} | {r.relayed_tps:,.0f} | {r.window_s:.1f} "
            f"| {r.completed} / {r.cut} / {r.failed} | {_ms(r.latency_p50_ms)} / {_ms(r.latency_p99_ms)} "
            f"| {_ms(r.ttft_p50_ms)} / {_ms(r.ttft_p99_ms)} "
            f"| {cpu['coordinator']:.0f} ({r.coordinator_kernel_percent:.0f}) | {per_token} "
            f"| {cpu['clients']:.0f} | {cpu['workers']:.0f} | {cpu['redis']:.0f} "
            f"| {sum(cpu.values()):.0f} | {r.machine_busy_percent:.0f} |"
        )
    return "\n".join(lines)


def render_added_latency(rows: list[StepResult]) -> str:
    direct = {r.streams: r for r in rows if r.path == "direct"}
    lines = [
        "| streams | added latency p50 ms | added latency p99 ms | relayed / direct tok/s |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        d = direct.get(r.streams)
        if r.path != "coordinator" or d is None:
            continue
        share = r.relayed_tps / d.relayed_tps if d.relayed_tps else math.nan
        lines.append(
            f"| {r.streams} | {_ms(r.latency_p50_ms - d.latency_p50_ms)} | {_ms(r.latency_p99_ms - d.latency_p99_ms)} "
            f"| {share:.2f} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def render_scale_out(rows: list[StepResult]) -> str:
    """Relayed tok/s through several coordinators over one, per stream count."""
    one = {r.streams: r for r in rows if r.path == "coordinator"}
    lines = ["| streams | coordinators | relayed tok/s | over one coordinator |", "| ---: | ---: | ---: | ---: |"]
    for r in rows:
        base = one.get(r.streams)
        if r.path in ("direct", "coordinator") or base is None or not base.relayed_tps:
            continue
        lines.append(
            f"| {r.streams} | {r.path.split()[0]} | {r.relayed_tps:,.0f} | {r.relayed_tps / base.relayed_tps:.2f}x |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def report(args: argparse.Namespace, rows: list[StepResult], profiles: list[tuple[str, str]]) -> str:
    parts = [
        f"## Coordinator relay capacity ({os.cpu_count()} CPU cores, {args.load_workers} load-test workers, "
        f"{args.client_processes} client processes, {args.rate:g} tok/s per stream, "
        f"{args.tokens_per_stream} tokens per stream, starts spread over {args.ramp:g} s, "
        f"steps cut at {args.step_time_limit:g} s)",
        "",
        render_table(rows),
        "",
        "relayed tok/s: pieces received by all clients per second over the window in which every stream was "
        "running (when that is under 0.5 s, e.g. some streams only started near the cut: the whole step). "
        "token latency: client receive time minus the load-test worker's send stamp. "
        f"CPU %: 100 = one core, {os.cpu_count()} cores = {100 * (os.cpu_count() or 1)}; "
        "machine busy %: /proc/stat, of all cores, anything else running on the machine included.",
    ]
    added = render_added_latency(rows)
    if added:
        parts += ["", "### Added by the coordinator (via coordinator minus direct)", "", added]
    scale_out = render_scale_out(rows)
    if scale_out:
        layout = "each pinned to a core of its own" if args.pin_coordinators else "sharing every core"
        parts += ["", f"### Scale-out: several coordinators on one Redis ({layout})", "", scale_out]
    failures = Counter[str]()
    for r in rows:
        failures.update(r.errors)
    if failures:
        parts += ["", "Failures: " + ", ".join(f"{k} x{v}" for k, v in failures.most_common())]
    for title, summary in profiles:
        parts += ["", f"### Profile: {title}", "", summary]
    return "\n".join(parts)
