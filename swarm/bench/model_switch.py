"""Model switch: the time from a request for a model no node serves to its first token, and whether the other
model's stream slows down meanwhile.

Two `swarm join --auto` nodes, each pinned to a core of its own (two PCs on one machine), and a coordinator
planning model `a` (the default model) with `b` (the same file under another name, so the switch costs a
real download and load; a whole replica is served the model file itself, uncut) as a model loaded on
demand. Both nodes start on `a`; one greedy stream on `a` runs throughout and its decode rate is taken
before the switch and while `b` loads on the other node.

    python -m swarm.bench.model_switch --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from swarm.bench.swarm_load import wait_for_a_worker
from swarm.client import SwarmClient
from swarm.gguf_files.default_model import resolve_model
from swarm.launch.local_swarm import LocalSwarm, free_port, interrupt_on_stop_signals, wait_until
from swarm.shared.types import TextPiece

PROMPT = "Write a long story about a lighthouse keeper."


class RateWatch:
    """A greedy stream on model a, restarted as each ends, recording when every token came."""

    def __init__(self, address: str) -> None:
        self.stamps: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(address,), name="rate-watch")
        self._thread.start()

    def _run(self, address: str) -> None:
        with SwarmClient(address) as client:
            while not self._stop.is_set():
                for event in client.stream(PROMPT, model="a", max_tokens=64, temperature=0.0):
                    if isinstance(event, TextPiece):
                        self.stamps += [time.perf_counter()] * len(event.token_ids)
                    if self._stop.is_set():
                        break

    def rate(self, start: float, end: float) -> float:
        return sum(1 for t in self.stamps if start <= t < end) / max(end - start, 1e-9)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def one_round(
    scratch: Path, model: Path, threads: int, index: int, pin_coordinator: bool
) -> tuple[float, float, float]:
    """(seconds to b's first token, a's tokens/s before, a's tokens/s while b loads)."""
    swarm = LocalSwarm(log_dir=scratch)
    try:
        swarm.start_redis(scratch / "redis")
        address = f"127.0.0.1:{free_port()}"
        plan = ("--plan-model", str(model), "--plan-model-name", "a", "--add-model", f"b={model}")
        coordinator = swarm.start_coordinator(
            address, "", *plan, "--stages-dir", str(scratch / "library"), "--model-residency", "0"
        )
        cores = sorted(os.sched_getaffinity(0))
        if pin_coordinator:  # beside the node that loads b: a's node keeps its core to itself
            os.sched_setaffinity(coordinator.pid, {cores[1 % len(cores)]})
        for node in range(2):
            flags = ("--worker-id", f"node-{node}", "--threads", str(threads), "--context", "1024", "--slots", "4")
            env = {"XDG_CACHE_HOME": str(scratch / f"cache-{index}-{node}")}
            process = swarm.start_auto_worker(address, *flags, name=f"node-{node}", env=env)
            os.sched_setaffinity(process.pid, {cores[node % len(cores)]})
        wait_for_a_worker(address, 300.0, 2)
        watch = RateWatch(address)
        try:
            wait_until(lambda: len(watch.stamps) > 16, 120, "model a's stream to flow")
            before_start = time.perf_counter()
            time.sleep(5)
            asked = time.perf_counter()
            with SwarmClient(address) as client:
                next(e for e in client.stream(PROMPT, model="b", max_tokens=8) if isinstance(e, TextPiece))
            switched = time.perf_counter()
            return switched - asked, watch.rate(before_start, asked), watch.rate(asked, switched)
        finally:
            watch.stop()
    finally:
        swarm.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--pin-coordinator",
        action="store_true",
        help="pin the coordinator to the core of the node that loads b (default: it floats over both cores)",
    )
    args = parser.parse_args(argv)
    interrupt_on_stop_signals()
    model = resolve_model(args.model)
    rounds = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="swarm-bench-") as scratch:
            rounds.append(one_round(Path(scratch), model, args.threads, index, args.pin_coordinator))
        switch_s, before, during = rounds[-1]
        print(
            f"round {index + 1}: b's first token after {switch_s:.1f} s; "
            f"a's stream {before:.1f} tok/s before, {during:.1f} while b loads"
        )
    switch = statistics.median(r[0] for r in rounds)
    ratio = statistics.median(r[2] / r[1] for r in rounds if r[1])
    print(f"median: first token of a model no node served {switch:.1f} s; a's decode while b loads {ratio:.2f}x before")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
