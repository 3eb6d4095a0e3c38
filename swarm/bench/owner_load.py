"""Benchmark: an owner's CPU-bound job pinned beside a busy worker, `--when always` against `--when idle` (issue 19).

Two desk workers share core 0 with the owner's job, one per arm (the other arm's is paused); a spare
worker on core 1 takes what they hand back, and clients keep STREAMS greedy streams going all along.
The arms alternate within one run: the job on an idle core (both desk workers paused), beside the
`--when always` worker, beside the `--when idle` one. The job times itself from its own start.

    python -m swarm.bench.owner_load --repeats 3
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from swarm.client import SwarmCallError, SwarmClient
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import LocalSwarm, free_port, swarm_argv, wait_until

STREAMS = 8
ARMS = ("idle core", "beside --when always", "beside --when idle")
DESK_OF_ARM = {"beside --when always": "always", "beside --when idle": "idle"}
JOB = "import hashlib, os, sys, time\nos.sched_setaffinity(0, {{{core}}})\nstarted = time.perf_counter()\nh = b''\n"
JOB += "for _ in range({rounds}):\n    h = hashlib.sha256(h).digest()\nprint(time.perf_counter() - started)\n"


def pin(pid: int, core: int) -> None:
    """Every thread of pid on one core (threads it starts later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {core})


def owner_job_s(core: int, rounds: int) -> float:
    """Seconds the owner's hashing job took, pinned to core, from its own start."""
    done = subprocess.run([sys.executable, "-c", JOB.format(core=core, rounds=rounds)], capture_output=True, check=True)
    return float(done.stdout)


class Streams:
    """STREAMS clients generating back to back until stopped."""

    def __init__(self, address: str, count: int) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(address, i), daemon=True) for i in range(count)]
        for thread in self._threads:
            thread.start()

    def _loop(self, address: str, index: int) -> None:
        with SwarmClient(address) as client:
            while not self._stop.is_set():
                client.generate(f"Stream {index} says", max_tokens=200, temperature=0.0)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)


def owner_command(command: str, worker_id: str, control_dir: Path) -> None:
    env = {**os.environ, "SWARM_CONTROL_DIR": str(control_dir)}
    subprocess.run(swarm_argv(command, "--worker-id", worker_id), env=env, capture_output=True, check=True)


def joined(client: SwarmClient, worker_id: str) -> bool:
    try:
        return any(w.info.worker_id == worker_id for w in client.status().workers)
    except SwarmCallError:  # the coordinator is still starting
        return False


def has_work(client: SwarmClient, worker_id: str) -> bool:
    return any(w.info.worker_id == worker_id and w.load.slots_busy > 0 for w in client.status().workers)


def run(repeats: int, rounds: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    cores = sorted(os.sched_getaffinity(0))[:2]
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    with_streams = dict.fromkeys(ARMS, 0)
    with tempfile.TemporaryDirectory(prefix="swarm-owner-") as scratch_dir:
        scratch = Path(scratch_dir)
        model = write_tiny_llama(scratch / "slow.gguf", seed=3, n_layer=6, n_embd=384, n_head=6, n_head_kv=2, n_ff=1536)
        swarm = LocalSwarm(log_dir=scratch)
        try:
            swarm.start_redis(scratch / "redis")
            address = f"127.0.0.1:{free_port()}"
            swarm.start_coordinator(address)
            env = {"SWARM_CONTROL_DIR": str(scratch)}
            common = ("--threads", "1", "--context", "512")
            workers = {
                "always": (cores[0], ("--slots", "4", "--when", "always")),
                "idle": (cores[0], ("--slots", "4", "--when", "idle")),
                "spare": (cores[1], ("--slots", "4")),
            }
            for name, (core, flags) in workers.items():
                process = swarm.start_worker(address, model, *common, *flags, "--worker-id", name, name=name, env=env)
                with SwarmClient(address) as client:
                    wait_until(functools.partial(joined, client, name), 60, f"{name} to join")
                pin(process.pid, core)
            streams = Streams(address, STREAMS)
            try:
                with SwarmClient(address) as client:
                    for repeat in range(repeats):
                        for arm in ARMS[repeat % 3 :] + ARMS[: repeat % 3]:  # each arm first once in three
                            desk = DESK_OF_ARM.get(arm)
                            for name in ("always", "idle"):
                                owner_command("resume" if name == desk else "pause", name, scratch)
                            if desk is not None and took_streams(client, desk):
                                with_streams[arm] += 1
                            times[arm].append(owner_job_s(cores[0], rounds))
            finally:
                streams.stop()
        finally:
            swarm.stop()
    return times, with_streams


def took_streams(client: SwarmClient, worker_id: str) -> bool:
    """Whether the desk worker took streams within 30 s (an `idle` one may not while its core is busy)."""
    try:
        wait_until(functools.partial(has_work, client, worker_id), 30, f"{worker_id} to take streams")
    except TimeoutError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6_000_000, help="sha256 rounds of the owner's job")
    args = parser.parse_args()
    times, with_streams = run(args.repeats, args.rounds)
    base = statistics.median(times["idle core"])
    print(f"owner's job: {args.rounds} sha256 rounds pinned to core 0, {STREAMS} streams, medians of {args.repeats}")
    for arm in ARMS:
        median = statistics.median(times[arm])
        runs = ", ".join(f"{t:.2f}" for t in times[arm])
        busy = f"; the worker had streams at the start of {with_streams[arm]}" if arm in DESK_OF_ARM else ""
        print(f"  {arm:22s} {median:6.2f} s  {base / median:.2f}x of its idle-core speed  ({runs}{busy})")


if __name__ == "__main__":
    main()
