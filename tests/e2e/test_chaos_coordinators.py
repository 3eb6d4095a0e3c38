"""Chaos across every tier: coordinators, workers and the Redis primary killed under a steady load lose nothing."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from swarm.client import SwarmCallError, SwarmClient
from swarm.launch.local_swarm import LocalSwarm, ManagedProcess, free_port, wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm
from tests.e2e.test_redis_sentinel import SentinelRedis, start_sentinel_redis
from tests.greedy_check import DEFAULT_TOLERANCE, GreedyReference

pytestmark = pytest.mark.timeout(150)

REQUESTS = 300
CONCURRENCY = 16
MAX_TOKENS = 64
START_EVERY_S = 0.08  # a steady load: request i starts no sooner than i * this, so it spans the chaos below
COORDINATOR_EVERY_S = 10.0
FIRST_COORDINATOR_KILL_S = 4.0
WORKER_EVERY_S = 3.0
PRIMARY_KILL_S = 6.0  # while the coordinator killed at 4 s restarts: it must wait for the promotion
MID_STREAM_WAIT_S = 3.0  # a coordinator's kill waits up to this long for it to be relaying a stream


@dataclass
class Chaos:
    """Kills and restarts one process at a time on a fixed schedule until `done` is set."""

    coordinators: list[ManagedProcess]
    workers: list[ManagedProcess]
    redis: SentinelRedis
    kills: Counter[str]
    seed: int
    streams_through: Callable[[int], int]  # how many clients are reading from coordinator i now
    died: list[str] = field(default_factory=list)  # processes found dead before their turn: they exited on their own
    streams_at_coordinator_kills: list[int] = field(default_factory=list)

    def run(self, done: threading.Event) -> None:
        rng = random.Random(self.seed)
        started = time.monotonic()
        next_worker, next_coordinator, primary_at = WORKER_EVERY_S, FIRST_COORDINATOR_KILL_S, PRIMARY_KILL_S
        while not done.wait(0.05):
            now = time.monotonic() - started
            if now >= next_worker:
                self._restart(rng.choice(self.workers), "worker")
                next_worker += WORKER_EVERY_S
            victim = self.kills["coordinator"] % 2  # A and B in turn; the other carries every client meanwhile
            streams = self.streams_through(victim)
            if now >= next_coordinator + MID_STREAM_WAIT_S or (now >= next_coordinator and streams):
                self.streams_at_coordinator_kills.append(streams)
                self._restart(self.coordinators[victim], "coordinator")
                next_coordinator += COORDINATOR_EVERY_S
            if now >= primary_at and not self.kills["primary"]:
                self.redis.primary.kill()  # once: Sentinel promotes the only replica, and nothing replaces it
                self.kills["primary"] += 1

    def _restart(self, victim: ManagedProcess, kind: str) -> None:
        if not victim.alive:
            self.died.append(f"{victim.name}, before {kind} kill {self.kills[kind] + 1}:\n{victim.log_tail(1500)}")
        victim.kill()
        self.kills[kind] += 1
        victim.start()


@dataclass
class Outcome:
    tokens: list[int] = field(default_factory=list)
    error: str | None = None
    finishes: int = 0
    # What the client saw, for a failure message: "a@0" it read from coordinator A with 0 tokens in
    # hand, "F@64" a finish after 64 tokens, each with seconds since the load began.
    trace: list[str] = field(default_factory=list)


def test_requests_survive_coordinators_workers_and_the_redis_primary_killed_under_load(
    local_swarm: LocalSwarm, tiny_model: Path, tmp_path: Path
) -> None:
    redis = start_sentinel_redis(local_swarm, tmp_path)
    addresses = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    coordinators = [
        local_swarm.start_coordinator(address, f"127.0.0.1:{free_port()}", name=f"coordinator-{name}")
        for address, name in zip(addresses, "ab", strict=True)
    ]
    swarm = RunningSwarm(local_swarm, addresses[0], "", tiny_model, coordinators[0])
    workers = [
        local_swarm.start_worker(
            ",".join(addresses),  # heartbeats move to the other coordinator while one is down
            tiny_model,
            *("--threads", "1", "--slots", "4", "--context", "512", "--worker-id", f"chaos-{i}"),
            name=f"chaos-{i}",
        )
        for i in range(3)
    ]
    swarm.wait_for_workers(3)
    wait_until(RunningSwarm(local_swarm, addresses[1], "", tiny_model, coordinators[1]).answers, 30, "coordinator B")
    prompts = [f"Story number {i} begins with" for i in range(20)]
    seed = random.randrange(1 << 30)
    reading_from: dict[int, int] = {}  # request -> the coordinator its client reads from now
    reading_lock = threading.Lock()

    def streams_through(coordinator: int) -> int:
        with reading_lock:
            return sum(1 for c in reading_from.values() if c == coordinator)

    chaos = Chaos(coordinators, workers, redis, Counter(), seed, streams_through)
    load_started = time.monotonic()

    def run(i: int) -> Outcome:
        time.sleep(max(0.0, load_started + i * START_EVERY_S - time.monotonic()))
        try:
            return stream(i)
        finally:
            with reading_lock:
                reading_from.pop(i, None)

    def stream(i: int) -> Outcome:
        outcome = Outcome()
        # Half the clients list B first, so both coordinators hold streams when either is killed.
        ordered = addresses[i % 2 :] + addresses[: i % 2]
        try:
            with SwarmClient(ordered, retries=20, timeout_s=45) as client:
                prompt = prompts[i % len(prompts)]
                stream = client.stream(prompt, max_tokens=MAX_TOKENS, temperature=0.0, request_id=f"chaos-{i}")
                for event in stream:
                    at = f"{time.monotonic() - load_started:.1f}s"
                    with reading_lock:
                        reading_from[i] = addresses.index(client.address)
                    source = "ab"[reading_from[i]]
                    if not outcome.trace or not outcome.trace[-1].startswith(source):
                        outcome.trace.append(f"{source}@{len(outcome.tokens)} {at}")
                    if isinstance(event, TextPiece):
                        outcome.tokens += event.token_ids
                    elif isinstance(event, Finished):
                        outcome.finishes += 1
                        outcome.trace.append(f"F@{len(outcome.tokens)} {at}")
        except SwarmCallError as exc:
            outcome.error = str(exc)
        return outcome

    done = threading.Event()
    killer = threading.Thread(target=chaos.run, args=(done,), name="chaos")
    killer.start()
    try:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(run, range(REQUESTS)))
    finally:
        done.set()
        killer.join()
    load_s = time.monotonic() - load_started

    reference = GreedyReference(tiny_model)
    worst_margin: dict[tuple[str, tuple[int, ...]], float] = {}  # most requests of a prompt share one output
    try:
        for i, r in enumerate(results):
            key = (prompts[i % len(prompts)], tuple(r.tokens))
            if len(r.tokens) == MAX_TOKENS and key not in worst_margin:
                worst_margin[key] = max(reference.margins(*key))
    finally:
        reference.close()
    # Exactly MAX_TOKENS tokens, each greedy's choice up to a rounding tie (requests share batches).
    margins = [worst_margin.get((prompts[i % len(prompts)], tuple(r.tokens))) for i, r in enumerate(results)]
    failed = [i for i, r in enumerate(results) if r.error is not None]
    lost = [i for i, r in enumerate(results) if r.error is None and r.finishes != 1]
    wrong = [
        i
        for i, (r, margin) in enumerate(zip(results, margins, strict=True))
        if r.error is None and (margin is None or margin > DEFAULT_TOLERANCE)
    ]
    print(
        f"requests={REQUESTS} lost={len(lost)} duplicated={len(wrong)} failed={len(failed)} "
        f"coordinator_kills={chaos.kills['coordinator']} worker_kills={chaos.kills['worker']} "
        f"primary_kills={chaos.kills['primary']} load_s={load_s:.1f} seed={seed} "
        f"streams_at_coordinator_kills={chaos.streams_at_coordinator_kills}"
    )
    died = chaos.died + [f"{p.name}, at the end:\n{p.log_tail(1500)}" for p in [*coordinators, *workers] if not p.alive]
    assert not died, "\n\n".join(died)
    assert chaos.kills["coordinator"] >= 2 and chaos.kills["primary"] == 1, f"the load ended early: {chaos.kills}"
    assert (len(lost), len(wrong), len(failed)) == (0, 0, 0), (
        "\n".join(  # the requests to look up in the logs
            f"chaos-{i}: {len(results[i].tokens)} tokens, worst margin {margins[i]}, {results[i].error or ''} "
            f"{results[i].trace}"
            for i in sorted({*lost[:3], *wrong[:3], *failed[:3]})
        )
    )
    assert redis.serving_port() == redis.replica_port
    logs = "".join(c.log_tail(10**7) for c in coordinators)
    assert "requeueing chaos-" in logs, "no coordinator kill hit a running request: takeover was not exercised"
    wait_until(lambda: len(swarm.up_workers()) == 3, 30, "every worker back up")
