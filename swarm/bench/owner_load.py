"""Benchmark: an owner's CPU-bound job pinned beside a busy worker, `--when always` against `--when idle` (issue 19).

Two desk workers share core 0 with the owner's job, one per arm (the other arm's is paused); a spare
worker on core 1 takes what they hand back, and clients keep STREAMS greedy streams going all along.
Everything else (Redis, the coordinator, the clients) runs on core 1.
The arms alternate within one run: the job on an idle core (both desk workers paused), beside the
`--when always` worker, beside the `--when idle` one. The job times itself from its own start. In the
`idle` arm the coordinator's view of the `idle` worker is polled: how soon after the job starts it
stops taking work and hands its streams on, and how soon after the job ends it serves again. Every
stream's request must end with each of its tokens once: lost counts requests that failed or came
short, duplicated those with a token twice.

    python -m swarm.bench.owner_load --repeats 3
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from swarm.client import SwarmCallError, SwarmClient
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import LocalSwarm, free_port, swarm_argv, wait_until
from swarm.worker.owner_load import busy_seconds

STREAMS = 8
STREAM_TOKENS = 200
ARMS = ("idle core", "beside --when always", "beside --when idle")
DESK_OF_ARM = {"beside --when always": "always", "beside --when idle": "idle"}
JOB = "import hashlib, os, sys, time\nos.sched_setaffinity(0, {{{core}}})\nstarted = time.perf_counter()\nh = b''\n"
JOB += "for _ in range({rounds}):\n    h = hashlib.sha256(h).digest()\nprint(time.perf_counter() - started)\n"
HANDED = re.compile(r"handed (\d+) running requests to other workers")


def pin(pid: int, core: int) -> None:
    """Every thread of pid on one core (threads it starts later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {core})


def owner_job_s(core: int, rounds: int) -> tuple[float, float, float]:
    """Seconds the owner's hashing job took, pinned to core, from its own start; its own CPU seconds; and the
    CPU seconds everything else took on that core meanwhile (its busy time in /proc/stat, host steal included,
    less the job's own)."""
    before_busy, before_job = core_busy_s(core), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", JOB.format(core=core, rounds=rounds)], capture_output=True, check=True)
    after_job = resource.getrusage(resource.RUSAGE_CHILDREN)
    job_cpu = (after_job.ru_utime + after_job.ru_stime) - (before_job.ru_utime + before_job.ru_stime)
    return float(done.stdout), job_cpu, core_busy_s(core) - before_busy - job_cpu


def core_busy_s(core: int) -> float:
    return busy_seconds(Path("/proc/stat").read_text(), {core})


@dataclass
class Tally:
    completed: int = 0
    lost: int = 0  # failed, or fewer tokens received than the worker says it generated
    duplicated: int = 0  # more received than generated, or more generated than asked: some came twice
    lock: threading.Lock = field(default_factory=threading.Lock)


class Streams:
    """STREAMS clients generating back to back until stopped; each request's end is tallied."""

    def __init__(self, address: str, count: int) -> None:
        self.tally = Tally()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(address, i), daemon=True) for i in range(count)]
        for thread in self._threads:
            thread.start()

    def _loop(self, address: str, index: int) -> None:
        with SwarmClient(address) as client:
            while not self._stop.is_set():
                try:
                    done = client.generate(f"Stream {index} says", max_tokens=STREAM_TOKENS, temperature=0.0)
                except SwarmCallError:
                    with self.tally.lock:
                        self.tally.lost += 1
                    continue
                received, generated = len(done.token_ids), done.finished.completion_tokens
                with self.tally.lock:
                    self.tally.completed += received == generated
                    self.tally.lost += received < generated
                    self.tally.duplicated += received > generated or generated > STREAM_TOKENS

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)


def owner_command(command: str, worker_id: str, control_dir: Path) -> None:
    env = {**os.environ, "SWARM_CONTROL_DIR": str(control_dir)}
    subprocess.run(swarm_argv(command, "--worker-id", worker_id), env=env, capture_output=True, check=True)


def shown_state(client: SwarmClient, worker_id: str) -> str:
    try:
        return next((w.shown_state for w in client.status().workers if w.info.worker_id == worker_id), "gone")
    except SwarmCallError:  # the coordinator is still starting
        return "gone"


def has_work(client: SwarmClient, worker_id: str) -> bool:
    return any(w.info.worker_id == worker_id and w.load.slots_busy > 0 for w in client.status().workers)


class StateClock:
    """Polls a worker's state as the coordinator shows it; when it first stopped taking work, when it went away."""

    def __init__(self, address: str, worker_id: str) -> None:
        self.started = time.monotonic()
        self.stopped_taking: float | None = None
        self.away: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(address, worker_id), daemon=True)
        self._thread.start()

    def _poll(self, address: str, worker_id: str) -> None:
        with SwarmClient(address) as client:
            while not self._done.wait(0.05) and self.away is None:
                state, at = shown_state(client, worker_id), time.monotonic() - self.started
                if state != "up" and self.stopped_taking is None:
                    self.stopped_taking = at
                if state.startswith("away"):
                    self.away = at

    def stop(self) -> None:
        self._done.set()
        self._thread.join(10)


@dataclass
class Results:
    times: dict[str, list[float]] = field(default_factory=lambda: {arm: [] for arm in ARMS})
    with_streams: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ARMS, 0))
    others_cpu: dict[str, list[float]] = field(default_factory=lambda: {arm: [] for arm in ARMS})  # on its core
    job_cpu: dict[str, list[float]] = field(default_factory=lambda: {arm: [] for arm in ARMS})
    stopped_taking_s: list[float] = field(default_factory=list)  # job start to the idle worker taking nothing new
    away_s: list[float] = field(default_factory=list)  # job start to its streams handed on
    back_s: list[float] = field(default_factory=list)  # job end to it serving again
    tally: Tally = field(default_factory=Tally)
    handed_on: int = 0


def run(repeats: int, rounds: int) -> Results:
    cores = sorted(os.sched_getaffinity(0))[:2]
    # Core 0 is the owner's PC: only the desk workers and the job run there. This process, its client
    # threads, Redis and the coordinator (started from here: they inherit it) stand for the rest of the
    # swarm on core 1; left free to run on core 0 they counted as the owner's load there and kept the
    # idle worker away all run.
    os.sched_setaffinity(0, {cores[1]})
    results = Results()
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
                    wait_until(lambda: shown_state(client, name) != "gone", 60, f"{name} to join")  # noqa: B023
                pin(process.pid, core)
            streams = Streams(address, STREAMS)
            try:
                with SwarmClient(address) as client:
                    for repeat in range(repeats):
                        for arm in ARMS[repeat % 3 :] + ARMS[: repeat % 3]:  # each arm first once in three
                            run_arm(client, address, arm, cores[0], rounds, scratch, results)
            finally:
                streams.stop()
                results.tally = streams.tally
        finally:
            swarm.stop()
            results.handed_on = sum(int(n) for n in HANDED.findall((scratch / "idle.log").read_text()))
    return results


def run_arm(
    client: SwarmClient, address: str, arm: str, core: int, rounds: int, scratch: Path, results: Results
) -> None:
    desk = DESK_OF_ARM.get(arm)
    for name in ("always", "idle"):
        owner_command("resume" if name == desk else "pause", name, scratch)
    busy = desk is not None and took_streams(client, desk)
    results.with_streams[arm] += busy
    clock = StateClock(address, "idle") if desk == "idle" else None
    job_s, job_cpu, others_s = owner_job_s(core, rounds)
    results.job_cpu[arm].append(job_cpu)
    results.times[arm].append(job_s)
    results.others_cpu[arm].append(others_s)
    if clock is None:
        return
    ended = time.monotonic()
    clock.stop()
    if busy and clock.stopped_taking is not None and clock.away is not None:  # it served when the job began
        results.stopped_taking_s.append(clock.stopped_taking)
        results.away_s.append(clock.away)
    try:
        wait_until(lambda: shown_state(client, "idle") == "up", 90, "the idle worker to serve again", 0.05)
        results.back_s.append(time.monotonic() - ended)
    except TimeoutError:  # the PC stayed busy (other users' processes count as the owner's)
        results.back_s.append(float("inf"))


def took_streams(client: SwarmClient, worker_id: str) -> bool:
    """Whether the desk worker took streams within 45 s (an `idle` one waits out its quiet period first)."""
    try:
        wait_until(functools.partial(has_work, client, worker_id), 45, f"{worker_id} to take streams")
    except TimeoutError:
        return False
    return True


def seconds(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})" if values else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6_000_000, help="sha256 rounds of the owner's job")
    args = parser.parse_args()
    results = run(args.repeats, args.rounds)
    base = statistics.median(results.times["idle core"])
    print(f"owner's job: {args.rounds} sha256 rounds pinned to core 0, {STREAMS} streams, medians of {args.repeats}")
    for arm in ARMS:
        median = statistics.median(results.times[arm])
        runs = ", ".join(f"{t:.2f}" for t in results.times[arm])
        busy = f"; the worker had streams at the start of {results.with_streams[arm]}" if arm in DESK_OF_ARM else ""
        print(f"  {arm:22s} {median:6.2f} s  {base / median:.2f}x of its idle-core speed  ({runs}{busy})")
        others = ", ".join(f"{t:.2f}" for t in results.others_cpu[arm])
        # The job's share of the CPU time its core gave out while it ran: what the worker took from it, apart
        # from how fast the host ran that core (a shared VM's core runs at different speeds minute to minute).
        shares = [j / (j + o) for j, o in zip(results.job_cpu[arm], results.others_cpu[arm], strict=True)]
        print(f"  {'':22s} CPU seconds others took on its core meanwhile: {others}")
        print(
            f"  {'':22s} the job's share of its core's busy time: median {statistics.median(shares):.3f} "
            f"({', '.join(f'{v:.3f}' for v in shares)})"
        )
    print("--when idle, from the job's start (where it had streams then):")
    print(f"  takes nothing new {seconds(results.stopped_taking_s)}")
    print(f"  hands its streams on {seconds(results.away_s)}")
    print(f"  from the job's end: serves again {seconds(results.back_s)} (inf: not within 90 s)")
    tally = results.tally
    print(
        f"streams: {tally.completed} requests complete, {results.handed_on} handed on by the idle worker, "
        f"lost={tally.lost} duplicated={tally.duplicated}"
    )


if __name__ == "__main__":
    main()
