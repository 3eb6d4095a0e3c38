"""Redis under Sentinel: the primary SIGKILLed mid-work, a replica promoted, and the swarm carries on by itself."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from redis.sentinel import Sentinel

from swarm.client import BatchClient, SwarmCallError
from swarm.coordinator import redis_keys as keys
from swarm.launch.local_swarm import LocalSwarm, free_port, wait_until
from swarm.shared.batch_types import BatchLine, BatchState, BatchSummary
from swarm.shared.redis_connection import parse_sentinel_url
from swarm.shared.types import Finished, GenerationEvent, RawRequest, TextPiece
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(120)

LINES = 24
STREAMS = 4
LINE_TOKENS = 32
STREAM_TOKENS = 300


def job_state(client: BatchClient, job_id: str) -> BatchSummary:
    try:
        return client.get(job_id)
    except SwarmCallError:  # Redis is failing over
        return BatchSummary(job_id, BatchState.RUNNING, 0, 0, 0, 0)


def test_requests_and_a_batch_job_complete_exactly_once_across_a_primary_kill(slow_model: Path, tmp_path: Path) -> None:
    processes = LocalSwarm(log_dir=tmp_path)
    try:
        primary_port = free_port()
        processes.start_redis(tmp_path / "primary", port=primary_port)
        primary = processes.processes[-1]
        replica_port = processes.start_redis_replica(tmp_path / "replica", primary_port)
        url = processes.start_sentinels(tmp_path / "sentinels", primary_port, replicas=1)
        address, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        coordinator = processes.start_coordinator(address, http, "--batch-reclaim-after", "2")
        swarm = RunningSwarm(processes, address, http, slow_model, coordinator)
        swarm.wait_for_coordinator()
        swarm.add_worker("--slots", "4", name="worker-0")
        swarm.wait_for_workers(1)
        lines = [
            BatchLine(RawRequest(prompt=f"Line {i} says", max_tokens=LINE_TOKENS, temperature=0.0), f"q{i}")
            for i in range(LINES)
        ]

        with BatchClient(address) as batches, swarm.client() as client, ThreadPoolExecutor(STREAMS) as pool:
            job = batches.submit(lines)
            wait_until(lambda: job_state(batches, job.job_id).done >= 2, 60, "the batch job running")
            started = [threading.Event() for _ in range(STREAMS)]

            def run_stream(index: int) -> list[GenerationEvent]:
                events = []
                for event in client.stream(f"Story {index}:", max_tokens=STREAM_TOKENS, temperature=0):
                    events.append(event)
                    started[index].set()
                return events

            streams = [pool.submit(run_stream, i) for i in range(STREAMS)]
            for index, event in enumerate(started):
                assert event.wait(60), f"stream {index} produced nothing"
            assert not any(s.done() for s in streams) and job_state(batches, job.job_id).done < LINES
            primary.kill()  # SIGKILL: Sentinel promotes the replica; nothing restarts the primary

            runs = [s.result(timeout=90) for s in streams]
            wait_until(lambda: job_state(batches, job.job_id).state == BatchState.DONE, 90, "the job to finish")
            finished = batches.get(job.job_id)
            results = list(batches.results(job.job_id))

        for events in runs:  # each stream whole: its pieces' tokens are every token it finished with
            finished_event = events[-1]
            assert isinstance(finished_event, Finished) and finished_event.completion_tokens == STREAM_TOKENS
            assert sum(len(e.token_ids) for e in events if isinstance(e, TextPiece)) == STREAM_TOKENS
        assert (finished.done, finished.failed, finished.total) == (LINES, 0, LINES)
        assert [r.line for r in results] == list(range(1, LINES + 1))
        assert [r.custom_id for r in results] == [f"q{i}" for i in range(LINES)]
        assert all(not r.error and r.completion_tokens == LINE_TOKENS for r in results)
        store = Sentinel(parse_sentinel_url(url).sentinels).master_for("swarm", decode_responses=True)
        assert int(store.info("server")["tcp_port"]) == replica_port  # the promoted replica served the rest
        assert store.hlen(keys.batch_results_key(job.job_id)) == LINES  # each line recorded once
        assert store.xlen(keys.BATCH_WORK) == 0  # every work item acknowledged
        store.close()
    finally:
        processes.stop()
