"""`swarm bench-fair-queue`: a quiet tenant's time to first token while another floods the swarm, against alone.

One swarm (redis-server, a coordinator with two static API keys, one worker), both arms alternating in
one run: the quiet tenant sends one request at a time, alone, then with the flooding tenant holding
--flood-streams + --flood-queued requests open. Prints each round's p95s, their medians and the ratio;
with --breakdown, where the quiet requests' milliseconds went in each arm, hop by hop, from the swarm's
own spans (the flood's requests are traced too, which costs the coordinator some time of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from swarm.bench.first_token import breakdown_lines
from swarm.bench.flood_and_quiet import FloodLoad, alone_and_flooded, first_token_seconds, p95
from swarm.bench.span_receiver import SpanReceiver
from swarm.bench.traced_request import TracedRequest
from swarm.client import SwarmClient
from swarm.client.failover import SwarmCallError
from swarm.gguf_files.default_model import resolve_model
from swarm.launch.local_swarm import LocalSwarm, free_port, interrupt_on_stop_signals, wait_until

log = logging.getLogger(__name__)

FLOOD_KEY, QUIET_KEY = "bench-flood-key", "bench-quiet-key"
PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "A haiku about autumn leaves:",
    "In computer science, a linked list is",
    "To make a cup of tea, you",
    "Honey never spoils because",
]
TARGET_RATIO = 1.5


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "bench-fair-queue", help="a quiet tenant's p95 time to first token with another tenant flooding, and alone"
    )
    p.add_argument("--model", default="default", help="GGUF path or 'default' (Gemma 3 270M)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--slots", type=int, default=4, help="the worker's concurrent sequences")
    p.add_argument("--flood-streams", type=int, default=32, help="the flooding tenant's concurrent streams")
    p.add_argument("--flood-queued", type=int, default=300, help="its requests queued on top")
    p.add_argument("--flood-max-tokens", type=int, default=32)
    p.add_argument("--quiet-requests", type=int, default=20, help="the quiet tenant's requests per arm")
    p.add_argument("--quiet-max-tokens", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="alone/flooded pairs; medians are over these")
    p.add_argument(
        "--tenant-slot-share", type=float, default=1.0, help="the coordinator's --tenant-slot-share (default 1)"
    )
    p.add_argument("--settle", type=float, default=3.0, help="seconds the flood runs before the quiet tenant starts")
    p.add_argument(
        "--breakdown", action="store_true", help="trace the swarm (OTLP to a receiver here) and time each hop per arm"
    )
    p.set_defaults(run=run_fair_queue)


def run_fair_queue(args: argparse.Namespace) -> int:
    model = resolve_model(args.model)
    interrupt_on_stop_signals()
    receiver = SpanReceiver() if args.breakdown else None
    tracer = TracerProvider().get_tracer("swarm-bench") if receiver else None  # ids for the swarm's spans
    arms: tuple[list[TracedRequest], list[TracedRequest]] = ([], [])
    with tempfile.TemporaryDirectory(prefix="swarm-fair-") as scratch:
        swarm = LocalSwarm(log_dir=Path(scratch))
        try:
            address = start_swarm(swarm, Path(scratch), model, args, receiver)
            load = FloodLoad(
                address,
                FLOOD_KEY,
                QUIET_KEY,
                args.flood_streams + args.flood_queued,
                args.flood_max_tokens,
                args.quiet_requests,
                args.quiet_max_tokens,
            )
            rounds = asyncio.run(measure_rounds(load, args.settle, args.rounds, tracer, arms))
        finally:
            swarm.stop()  # each process exports its last spans on the way out
    lines = report_lines(rounds, model, args)
    if receiver is not None:
        for name, requests in zip(("alone", "flooded"), arms, strict=True):
            lines += ["", f"Quiet requests {name}, every round:", *breakdown_lines(receiver, requests)[1:]]
        receiver.close()
    print("\n".join(lines))
    return 0


def start_swarm(
    swarm: LocalSwarm, scratch: Path, model: Path, args: argparse.Namespace, receiver: SpanReceiver | None
) -> str:
    tracing = ["--otlp-endpoint", receiver.endpoint] if receiver is not None else []
    swarm.start_redis(scratch / "redis")
    address = f"127.0.0.1:{free_port()}"
    keys = ["--api-key", FLOOD_KEY, "--api-key", QUIET_KEY]
    swarm.start_coordinator(address, "", *keys, "--tenant-slot-share", str(args.tenant_slot_share), *tracing)
    worker_args = ["--threads", str(args.threads), "--slots", str(args.slots), "--context", "512", *tracing]
    swarm.start_worker(address, model, *worker_args)

    def worker_up() -> bool:
        try:
            with SwarmClient(address, api_key=QUIET_KEY, retries=0) as client:
                return any(w.up for w in client.status().workers)
        except SwarmCallError:
            return False

    wait_until(worker_up, 300, "the benchmark worker")
    return address


async def measure_rounds(
    load: FloodLoad,
    settle_s: float,
    rounds: int,
    tracer: Tracer | None,
    arms: tuple[list[TracedRequest], list[TracedRequest]],
) -> list[tuple[float, float, float]]:
    """Pairs of arms, alone first in each: the quiet tenant's p95 seconds to first token alone and flooded, and
    the flood's tokens/s meanwhile (every request of each arm is added to `arms`)."""
    measured = []
    for _ in range(rounds):
        pair = await alone_and_flooded(load, PROMPTS, settle_s, tracer)
        arms[0].extend(pair.alone)
        arms[1].extend(pair.flooded)
        alone, flooded = first_token_seconds(pair.alone), first_token_seconds(pair.flooded)
        measured.append((p95(alone), p95(flooded), pair.flood_tokens_per_s))
        log.info(
            "round: quiet p95 alone %.1f ms, flooded %.1f ms; flood %.1f tok/s",
            p95(alone) * 1000,
            p95(flooded) * 1000,
            pair.flood_tokens_per_s,
        )
    return measured


def report_lines(rounds: list[tuple[float, float, float]], model: Path, args: argparse.Namespace) -> list[str]:
    alone = statistics.median(a for a, _, _ in rounds)
    flooded = statistics.median(f for _, f, _ in rounds)
    flood_rate = statistics.median(r for _, _, r in rounds)
    ratio = flooded / alone if alone else float("inf")
    lines = [
        f"model {model.name}; one worker --threads {args.threads} --slots {args.slots}; coordinator "
        f"--tenant-slot-share {args.tenant_slot_share:g}; every process on the "
        f"same cores, nothing pinned (os.cpu_count() = {os.cpu_count()})",
        f"flood: {args.flood_streams} streams + {args.flood_queued} queued, {args.flood_max_tokens} tokens each; "
        f"quiet: {args.quiet_requests} requests one at a time, {args.quiet_max_tokens} tokens each",
        "",
        "| round | quiet p95 TTFT alone ms | quiet p95 TTFT flooded ms | ratio | flood tok/s meanwhile |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, (a, f, r) in enumerate(rounds, 1):
        lines.append(f"| {i} | {a * 1000:.1f} | {f * 1000:.1f} | {f / a if a else float('inf'):.2f} | {r:.1f} |")
    lines.append(
        f"| **median** | **{alone * 1000:.1f}** | **{flooded * 1000:.1f}** | **{ratio:.2f}** | **{flood_rate:.1f}** |"
    )
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    lines += ["", f"{verdict} the target: flooded p95 <= {TARGET_RATIO}x alone"]
    return lines
