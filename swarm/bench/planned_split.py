"""`python -m swarm.bench.planned_split`: on two emulated PCs, one made half as fast by a co-running busy loop on
its core, the planner's 2-stage split against the even split (`swarm split --stages 2`), decode tok/s at N streams.

Both arms serve in one swarm on one EmulatedLan (even: stage 0 on PC 0, stage 1 on PC 1; planned: the layer
ranges and PC order the planner picks when told the slow PC takes twice as long per layer and the links
cost what the LAN's do). The arms take turns in alternating order; each figure is a median.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swarm.bench.engine_vs_bare import fresh_prompts
from swarm.bench.lan.emulated_lan import EmulatedLan, pin_to_cores
from swarm.bench.swarm_load import measure_swarm
from swarm.coordinator.planning.link_costs import Link, Measurements, cut_bytes
from swarm.coordinator.planning.planner import NodeCapacity, split_layers
from swarm.gguf_files.default_model import cache_dir, resolve_model
from swarm.gguf_files.model_shape import model_shape
from swarm.gguf_files.stage_files import cached_split, split_model
from swarm.launch.local_swarm import LocalSwarm
from swarm.shared.types import NodeId

log = logging.getLogger(__name__)
ARMS = ("even", "planned")


def planned_layout(model: Path, slow_pc: int, delay_s: float, bps: float) -> list[tuple[int, int, int]]:
    """(PC, start, end) per stage: the planner's split when PC slow_pc takes twice as long per layer."""
    shape = model_shape(model, "model")
    pcs = [NodeId("pc0"), NodeId("pc1")]
    nodes = [NodeCapacity(pc, 10**12, 1e9, 1) for pc in pcs]
    link = Link(2 * delay_s, bps / 8)
    measured = Measurements(
        {pc: (2.0 if i == slow_pc else 1.0) for i, pc in enumerate(pcs)},
        {(pcs[0], pcs[1]): link, (pcs[1], pcs[0]): link},
        cut_bytes(shape),
    )
    stages = split_layers(shape, nodes, stages=2, measured=measured)
    return [(pcs.index(s.node_ids[0]), s.layer_start, s.layer_end) for s in stages]


def start_arms(lan: EmulatedLan, scratch: Path, model: Path, layout: list[tuple[int, int, int]]) -> None:
    """Both pipelines: the even split on PCs 0, 1 and the planner's on the PCs it chose; returns once all are up."""
    worker_args = ("--threads", "1", "--slots", "8", "--context", "512")
    lan.start_coordinator(scratch)
    even = cached_split(model, 2, cache_dir() / "stages")
    lan.start_pipeline(even, *worker_args, "--model-name", "even", pcs=[0, 1], name="even")
    manifest = split_model(model, [(start, end) for _, start, end in layout], scratch / "planned")
    files = [scratch / "planned" / stage.file for stage in manifest.stages]
    pcs = [pc for pc, _, _ in layout]
    lan.start_pipeline(files, *worker_args, "--model-name", "planned", pcs=pcs, name="planned")
    lan.wait_for_workers(4, "both pipelines")


def measure(address: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """arm -> decode tok/s of each repeat, the arms taking turns in alternating order."""
    for arm in ARMS:  # warm caches, channels and links
        asyncio.run(measure_swarm(address, fresh_prompts(0, 2), 8, model=arm))
    rates: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for repeat in range(args.repeats):
        prompts = fresh_prompts(repeat + 1, args.streams)
        for arm in ARMS if repeat % 2 == 0 else ARMS[::-1]:
            rates[arm].append(
                asyncio.run(measure_swarm(address, prompts, args.max_tokens, model=arm)).decode_tokens_per_s
            )
            time.sleep(0.3)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="default")
    parser.add_argument("--slow-pc", type=int, default=1, choices=(0, 1))
    parser.add_argument("--delay-ms", type=float, default=0.25)
    parser.add_argument("--gbps", type=float, default=1.0)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING")
    cores = sorted(os.sched_getaffinity(0))
    pcs = [{cores[0]}, {cores[1]}]
    model = resolve_model(args.model)
    layout = planned_layout(model, args.slow_pc, args.delay_ms / 1e3, args.gbps * 1e9)
    scratch = Path(tempfile.mkdtemp(prefix="swarm-split-"))  # kept: its logs say why a run failed
    lan = EmulatedLan(pcs, args.delay_ms / 1e3, args.gbps * 1e9, LocalSwarm(log_dir=scratch))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # the slow PC's core is shared with it
    pin_to_cores(hog.pid, pcs[args.slow_pc])
    try:
        start_arms(lan, scratch, model, layout)
        rates = measure(lan.coordinator, args)
    finally:
        hog.kill()
        hog.wait()
        lan.stop()
    even_rate, planned_rate = (statistics.median(rates[arm]) for arm in ARMS)
    each = ", ".join(f"{p / e:.2f}" for e, p in zip(rates["even"], rates["planned"], strict=True))
    planned = " | ".join(f"L{s}-{e - 1} on PC {p}" for p, s, e in layout)
    print(
        f"PC {args.slow_pc} half as fast (a busy loop shares its core); PCs: core {cores[0]}, core {cores[1]}; links "
        f"{args.delay_ms:g} ms one-way, {args.gbps:g} Gbit/s; {args.streams} streams x {args.max_tokens} tokens, "
        f"median of {args.repeats}, arms alternating; logs in {scratch}\n"
        f"even (L0-8 on PC 0 | L9-17 on PC 1): {even_rate:.1f} tok/s; planned ({planned}): {planned_rate:.1f} tok/s; "
        f"planned / even {planned_rate / even_rate:.2f}x (each run: {each})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
