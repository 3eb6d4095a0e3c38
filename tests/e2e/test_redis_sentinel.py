"""Redis under Sentinel: the primary SIGKILLed under 50 requests and a 100-line batch job; each ends exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.sentinel import Sentinel

from swarm.client import BatchClient, SwarmCallError
from swarm.coordinator import redis_keys as keys
from swarm.launch.local_swarm import LocalSwarm, ManagedProcess, free_port, wait_until
from swarm.shared.batch_types import BatchLine, BatchState, BatchSummary
from swarm.shared.redis_connection import close_redis, connect_redis, parse_sentinel_url
from swarm.shared.types import Finished, GenerationEvent, RawRequest, TextPiece
from tests.conftest import RunningSwarm
from tests.greedy_check import GreedyReference

pytestmark = pytest.mark.timeout(120)

LINES = 100
REQUESTS = 50
PROMPTS = 5  # the requests share a few prompts, so checking each distinct output stays quick
LINE_TOKENS = 8
REQUEST_TOKENS = 32


@dataclass
class SentinelRedis:
    """A primary, one replica and three Sentinels, all redis-server processes on loopback."""

    url: str  # redis+sentinel://...
    primary: ManagedProcess
    replica_port: int

    def serving_port(self) -> int:
        """The port of the server the Sentinels now name primary."""
        store = Sentinel(parse_sentinel_url(self.url).sentinels).master_for("swarm", decode_responses=True)
        try:
            return int(store.info("server")["tcp_port"])
        finally:
            store.close()


def start_sentinel_redis(processes: LocalSwarm, data_dir: Path) -> SentinelRedis:
    primary_port = free_port()
    processes.start_redis(data_dir / "primary", port=primary_port)
    primary = processes.processes[-1]
    with redis.Redis(port=primary_port) as client:  # the replica syncs at once, not after Redis's 5 s default
        client.config_set("repl-diskless-sync-delay", 0)
    replica_port = processes.start_redis_replica(data_dir / "replica", primary_port)
    url = processes.start_sentinels(data_dir / "sentinels", primary_port, replicas=1)
    return SentinelRedis(url, primary, replica_port)


def job_state(client: BatchClient, job_id: str) -> BatchSummary:
    try:
        return client.get(job_id)
    except SwarmCallError:  # Redis is failing over
        return BatchSummary(job_id, BatchState.RUNNING, 0, 0, 0, 0)


def test_fifty_requests_and_a_batch_job_complete_exactly_once_across_a_primary_kill(
    local_swarm: LocalSwarm, slow_model: Path, tmp_path: Path
) -> None:
    store = start_sentinel_redis(local_swarm, tmp_path)
    address, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    coordinator = local_swarm.start_coordinator(address, http, "--batch-reclaim-after", "2")
    swarm = RunningSwarm(local_swarm, address, http, slow_model, coordinator)
    swarm.wait_for_coordinator()
    # Enough slots between them that all 50 requests run at once.
    for i in range(2):
        swarm.add_worker("--slots", "25", "--context", "128", name=f"worker-{i}")
    swarm.wait_for_workers(2)
    lines = [
        BatchLine(RawRequest(prompt=f"Line {i} says", max_tokens=LINE_TOKENS, temperature=0.0), f"q{i}")
        for i in range(LINES)
    ]
    prompts = [f"Story {i}:" for i in range(PROMPTS)]

    with BatchClient(address) as batches, swarm.client() as client, ThreadPoolExecutor(REQUESTS) as pool:
        job = batches.submit(lines)
        wait_until(lambda: job_state(batches, job.job_id).done >= 2, 60, "the batch job running")
        started = [threading.Event() for _ in range(REQUESTS)]

        def run_request(index: int) -> list[GenerationEvent]:
            events = []
            stream = client.stream(
                prompts[index % PROMPTS], max_tokens=REQUEST_TOKENS, temperature=0, request_id=f"sentinel-{index}"
            )
            for event in stream:
                events.append(event)
                started[index].set()
            return events

        requests = [pool.submit(run_request, i) for i in range(REQUESTS)]
        for index, event in enumerate(started):
            assert event.wait(60), f"request {index} produced nothing"
        running = sum(not r.done() for r in requests)
        lines_done = job_state(batches, job.job_id).done
        assert running >= REQUESTS * 3 // 4 and lines_done < LINES, (running, lines_done)
        store.primary.kill()  # SIGKILL: Sentinel promotes the replica; nothing restarts the primary
        killed_at = time.monotonic()

        runs = [r.result(timeout=90) for r in requests]
        requests_done_s = time.monotonic() - killed_at
        wait_until(lambda: job_state(batches, job.job_id).state == BatchState.DONE, 90, "the job to finish")
        finished = batches.get(job.job_id)
        results = list(batches.results(job.job_id))
    print(
        f"primary SIGKILLed with {running} requests running and {lines_done}/{LINES} lines done; "
        f"requests done {requests_done_s:.1f} s later, the job {time.monotonic() - killed_at:.1f} s later"
    )

    outputs = set()
    for index, events in enumerate(runs):  # each request whole: one finish, after every token it counts
        finishes = [e for e in events if isinstance(e, Finished)]
        tokens = tuple(t for e in events if isinstance(e, TextPiece) for t in e.token_ids)
        assert len(finishes) == 1 and events[-1] is finishes[0], f"request {index}: {len(finishes)} finishes"
        assert finishes[0].completion_tokens == len(tokens) == REQUEST_TOKENS, f"request {index}"
        outputs.add((prompts[index % PROMPTS], tokens))
    reference = GreedyReference(slow_model)
    try:
        for prompt, tokens in outputs:  # no token lost or repeated: the text is greedy's, up to near ties
            reference.check(prompt, tokens)
    finally:
        reference.close()
    assert (finished.done, finished.failed, finished.total) == (LINES, 0, LINES)
    assert [r.line for r in results] == list(range(1, LINES + 1))
    assert [r.custom_id for r in results] == [f"q{i}" for i in range(LINES)]
    assert all(not r.error and r.completion_tokens == LINE_TOKENS for r in results)
    assert store.serving_port() == store.replica_port  # the promoted replica served the rest
    primary = Sentinel(parse_sentinel_url(store.url).sentinels).master_for("swarm", decode_responses=True)
    assert primary.hlen(keys.batch_results_key(job.job_id)) == LINES  # each line recorded once
    assert primary.xlen(keys.BATCH_WORK) == 0  # every work item acknowledged
    primary.close()


def test_a_coordinator_starting_while_the_primary_is_down_waits_for_the_promoted_replica(
    local_swarm: LocalSwarm, tmp_path: Path
) -> None:
    store = start_sentinel_redis(local_swarm, tmp_path)
    store.primary.kill()  # the Sentinels still name it for a second before they fail over

    async def connect_as_a_coordinator_does() -> int:
        redis = await connect_redis(store.url)
        try:
            return int((await redis.info("server"))["tcp_port"])
        finally:
            await close_redis(redis)

    assert asyncio.run(connect_as_a_coordinator_does()) == store.replica_port
