"""The capacity benchmark's report: the per-step table, the latency the coordinator adds, failures, profiles."""

from __future__ import annotations

import argparse
import math
import os
import statistics
from collections import Counter

from swarm.bench.capacity_bench import LIMITS_PATH
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
        if r.path in ("direct", "coordinator") or "limits" in r.path or base is None or not base.relayed_tps:
            continue
        lines.append(
            f"| {r.streams} | {r.path.split()[0]} | {r.relayed_tps:,.0f} | {r.relayed_tps / base.relayed_tps:.2f}x |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def render_limits_overhead(rows: list[StepResult]) -> str:
    """Per stream count: the medians of the limits-off and limits-on steps through one coordinator, side by side."""
    lines = [
        "| streams | runs | relayed tok/s off / on | on / off | coordinator CPU µs/token off / on | on / off |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for streams in sorted({r.streams for r in rows if r.path == LIMITS_PATH}):
        off = [r for r in rows if r.streams == streams and r.path == "coordinator"]
        on = [r for r in rows if r.streams == streams and r.path == LIMITS_PATH]
        tps_off, tps_on = (statistics.median(r.relayed_tps for r in arm) for arm in (off, on))
        cpu_off, cpu_on = (statistics.median(r.coordinator_us_per_token for r in arm) for arm in (off, on))
        lines.append(
            f"| {streams} | {len(off)} / {len(on)} | {tps_off:,.0f} / {tps_on:,.0f} | {tps_on / tps_off:.3f} "
            f"| {cpu_off:.0f} / {cpu_on:.0f} | {cpu_on / cpu_off:.3f} |"
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
    limits = render_limits_overhead(rows)
    if limits:
        parts += ["", "### Key limits on against off (medians; the arms alternate within the run)", "", limits]
    failures = Counter[str]()
    for r in rows:
        failures.update(r.errors)
    if failures:
        parts += ["", "Failures: " + ", ".join(f"{k} x{v}" for k, v in failures.most_common())]
    for title, summary in profiles:
        parts += ["", f"### Profile: {title}", "", summary]
    return "\n".join(parts)
