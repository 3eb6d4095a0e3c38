"""Batch jobs through a real swarm: they survive coordinator and Redis restarts, and yield to interactive work."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarm.client import BatchClient, SwarmCallError
from swarm.coordinator import redis_keys as keys
from swarm.launch.local_swarm import LocalSwarm, free_port, wait_until
from swarm.shared.batch_types import BatchLine, BatchState, BatchSummary
from swarm.shared.types import Finished, RawRequest, TextPiece
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
pytestmark = pytest.mark.timeout(120)


def greedy_lines(count: int, max_tokens: int) -> list[BatchLine]:
    return [
        BatchLine(RawRequest(prompt=f"Line {i} says", max_tokens=max_tokens, temperature=0.0), f"q{i}")
        for i in range(count)
    ]


def job_state(client: BatchClient, job_id: str) -> BatchSummary:
    try:
        return client.get(job_id)
    except SwarmCallError:  # the coordinator or Redis is restarting
        return BatchSummary(job_id, BatchState.RUNNING, 0, 0, 0, 0)


# Long enough lines that the faults below land mid-job even on a fast, idle machine.
LINE_TOKENS = 96


@pytest.mark.timeout(240)
def test_a_job_survives_a_coordinator_kill_a_worker_kill_and_a_redis_restart(tiny_model: Path, tmp_path: Path) -> None:
    processes = LocalSwarm(log_dir=tmp_path)
    try:
        redis_port = free_port()
        redis_url = processes.start_redis(tmp_path / "redis-data", port=redis_port)
        address, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        # A short reclaim time, so the restarted coordinator soon takes over the lines its killed predecessor held.
        coordinator_args = ("--batch-reclaim-after", "2", "--no-worker-wait", "60")
        coordinator = processes.start_coordinator(address, http, *coordinator_args)
        swarm = RunningSwarm(processes, address, http, tiny_model, coordinator)
        swarm.wait_for_coordinator()
        swarm.add_worker("--slots", "1", name="worker-0")
        doomed = swarm.add_worker("--slots", "1", name="worker-1")
        swarm.wait_for_workers(2)
        lines = greedy_lines(100, max_tokens=LINE_TOKENS)

        with BatchClient(address) as client:
            job = client.submit(lines)
            assert (job.state, job.total, job.done) == (BatchState.RUNNING, 100, 0)
            wait_until(lambda: job_state(client, job.job_id).done >= 10, 60, "10 lines done")

            swarm.coordinator.kill()  # SIGKILL: lines in flight are left pending in the stream
            swarm.start_coordinator(*coordinator_args)
            swarm.wait_for_coordinator()
            before_worker_kill = job_state(client, job.job_id).done
            wait_until(lambda: job_state(client, job.job_id).done >= before_worker_kill + 10, 60, "progress")

            doomed.kill()  # lines running on it are run again elsewhere
            before_redis_restart = job_state(client, job.job_id).done
            wait_until(lambda: job_state(client, job.job_id).done >= before_redis_restart + 10, 60, "progress")

            # SIGTERM, not SIGKILL: redis-server flushes and fsyncs its append-only file on a clean
            # shutdown, while with appendfsync everysec a SIGKILL may lose the last second of writes,
            # which no swarm code could make up for.
            redis_process = next(p for p in processes.processes if p.name == "redis")
            assert job_state(client, job.job_id).done < 90  # the restart comes mid-job
            redis_process.stop()
            processes.processes.remove(redis_process)
            processes.start_redis(tmp_path / "redis-data", port=redis_port)
            processes.processes.insert(0, processes.processes.pop())  # stopped last again, after the coordinator
            wait_until(lambda: job_state(client, job.job_id).state == BatchState.DONE, 120, "the job to finish")
            finished = client.get(job.job_id)
            results = list(client.results(job.job_id))

        assert (finished.done, finished.failed, finished.total) == (100, 0, 100)
        assert [r.line for r in results] == list(range(1, 101))
        assert [r.custom_id for r in results] == [f"q{i}" for i in range(100)]
        assert all(not r.error and r.completion_tokens == LINE_TOKENS for r in results)
        store = redis.Redis.from_url(redis_url, decode_responses=True)
        assert store.hlen(keys.batch_results_key(job.job_id)) == 100  # each line recorded once
        assert store.xlen(keys.BATCH_WORK) == 0  # every work item acknowledged
        store.close()

        with swarm.client() as direct, ThreadPoolExecutor(4) as pool:
            texts = list(
                pool.map(
                    lambda line: direct.generate(line.request.prompt, max_tokens=LINE_TOKENS, temperature=0).text, lines
                )
            )
        assert [r.text for r in results] == texts
    finally:
        processes.stop()


def test_an_interactive_request_waits_for_at_most_the_batch_lines_running(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    swarm.add_worker("--slots", "2", name="worker-0")
    swarm.wait_for_workers(1)
    with BatchClient(swarm.address) as batches, swarm.client() as client:
        job = batches.submit(greedy_lines(40, max_tokens=48))
        wait_until(lambda: batches.get(job.job_id).done >= 2, 60, "the batch to be running")
        before = batches.get(job.job_id).done
        # Lines done when the request's first piece arrives: how long it waited to be dispatched, not how
        # many short lines the other slot finishes while it generates (5 on a loaded CI machine).
        done_at_first_piece: list[int] = []
        finished: Finished | None = None
        for event in client.stream("Interactive", max_tokens=4, temperature=0):
            if isinstance(event, TextPiece) and not done_at_first_piece:
                done_at_first_piece.append(batches.get(job.job_id).done)
            if isinstance(event, Finished):
                finished = event
        assert finished is not None and finished.completion_tokens == 4
        assert done_at_first_piece, "the interactive request streamed no text"
        waited = done_at_first_piece[0] - before
        # The batch holds at most as many lines in the swarm as there are slots (2): the interactive request
        # waited for no more than those. One more may end between reading `before` and the request reaching
        # the queue, and one between its dispatch and reading the count. In arrival order it would wait for ~38.
        assert waited <= 4, f"{waited} batch lines finished before the interactive request's first piece"
        assert batches.get(job.job_id).state == BatchState.RUNNING
        batches.cancel(job.job_id)


def test_an_interactive_request_is_dispatched_before_batch_lines_queued_earlier(
    make_swarm: MakeSwarm, redis_url: str, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)  # slow enough that a request holds its slot for seconds
    swarm.add_worker("--slots", "1", name="worker-0")
    swarm.wait_for_workers(1)
    queue = redis.Redis.from_url(redis_url, decode_responses=True)
    with BatchClient(swarm.address) as batches, swarm.client() as client, ThreadPoolExecutor(2) as pool:
        # A long interactive request holds the only slot, so the batch line the runner submits waits in the queue.
        long = pool.submit(client.generate, "Hold the slot", max_tokens=200, temperature=0)
        wait_until(lambda: bool(swarm.up_workers()) and queue.scard(keys.RUNNING) == 1, 10, "the slot to be taken")
        job = batches.submit(greedy_lines(3, max_tokens=4))
        wait_until(lambda: queue.zcard(keys.QUEUE) == 1, 10, "a batch line to be queued")
        late = pool.submit(client.generate, "Came later", max_tokens=4, temperature=0, request_id="late-1")
        wait_until(lambda: queue.zcard(keys.QUEUE) == 2, 10, "the interactive request to be queued")
        assert long.running(), "the slot was freed before the test could queue behind it"
        assert queue.zrange(keys.QUEUE, 0, -1)[0] == "late-1"  # first in line though it came last
        assert late.result(60).finished.completion_tokens == 4
        assert batches.get(job.job_id).done == 0  # no batch line finished before it
        assert long.result(60).finished.completion_tokens == 200
        wait_until(lambda: batches.get(job.job_id).state == BatchState.DONE, 60, "the batch to finish")
    queue.close()


def test_a_batch_line_lost_from_the_queue_is_submitted_again(
    make_swarm: MakeSwarm, redis_url: str, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model, coordinator_args=("--batch-reclaim-after", "1"))
    swarm.add_worker("--slots", "1", name="worker-0")
    swarm.wait_for_workers(1)
    queue = redis.Redis.from_url(redis_url, decode_responses=True)
    with BatchClient(swarm.address) as batches, swarm.client() as client, ThreadPoolExecutor(1) as pool:
        long = pool.submit(client.generate, "Hold the slot", max_tokens=100, temperature=0)
        wait_until(lambda: queue.scard(keys.RUNNING) == 1, 10, "the slot to be taken")
        job = batches.submit(greedy_lines(1, max_tokens=4))
        wait_until(lambda: queue.zcard(keys.QUEUE) == 1, 10, "the batch line to be queued")
        # As when Redis restarts between taking a request off the queue and marking it running.
        assert queue.zremrangebyrank(keys.QUEUE, 0, -1) == 1
        long.result(60)
        wait_until(lambda: batches.get(job.job_id).state == BatchState.DONE, 30, "the line to be run again")
        assert [r.completion_tokens for r in batches.results(job.job_id)] == [4]
    queue.close()
    log = swarm.coordinator.log_path.read_text() if swarm.coordinator.log_path else ""
    assert "made no progress for 3 s; submitting it again" in log


def test_bad_lines_are_refused_naming_the_line_and_field(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    bad = [*greedy_lines(3, 4), BatchLine(RawRequest(prompt="hot", temperature=-1.0))]
    with BatchClient(swarm.address) as client:
        with pytest.raises(SwarmCallError) as caught:
            client.submit(bad)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details.startswith("line 4: temperature: must be >= 0")
        with pytest.raises(SwarmCallError) as caught:
            client.get("job-nope")
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        assert client.list() == []  # nothing was submitted
    with grpc.insecure_channel(swarm.address) as channel:  # stock gRPC tools see the service
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="swarm.v1.Batch"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_line_the_swarm_cannot_serve_fails_alone(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    lines = [*greedy_lines(2, 4), BatchLine(RawRequest(prompt="x", model="no-such-model"), "typo")]
    with BatchClient(swarm.address) as client:
        job = client.submit(lines)
        wait_until(lambda: client.get(job.job_id).state == BatchState.DONE, 30, "the job to finish")
        assert (client.get(job.job_id).done, client.get(job.job_id).failed) == (2, 1)
        results = list(client.results(job.job_id))
    assert [bool(r.error) for r in results] == [False, False, True]
    assert results[2].custom_id == "typo"
    assert results[2].error.startswith("NOT_FOUND: model 'no-such-model' is not served here")


def swarm_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swarm", "batch", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_batch_commands(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    swarm = make_swarm(workers=0, coordinator_args=("--default-model", "tiny"))
    at = ("--coordinator", swarm.address)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "".join(f'{{"prompt": "Count {i}", "max_tokens": 3, "temperature": 0, "id": "c{i}"}}\n' for i in range(5))
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": "x", "max_tokens": "many"}\n')

    refused = swarm_cli("submit", str(bad), *at)
    assert refused.returncode == 1
    assert "line 2: max_tokens: must be an integer" in refused.stderr
    assert "Traceback" not in refused.stderr

    submitted = swarm_cli("submit", str(jobs), *at)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("job-")
    # No worker yet, so the job cannot finish: results are refused unless partial.
    unfinished = swarm_cli("results", job_id, *at)
    assert unfinished.returncode == 1
    assert "FAILED_PRECONDITION" in unfinished.stderr and "still running" in unfinished.stderr
    partial = swarm_cli("results", job_id, "--partial", *at)
    assert (partial.returncode, partial.stdout) == (0, "")
    second = swarm_cli("submit", str(jobs), *at).stdout.strip()
    cancelled = swarm_cli("cancel", second, *at)
    assert cancelled.returncode == 0
    assert cancelled.stdout.startswith(f"{second}  cancelled  0 done, 0 failed of 5")
    listed = swarm_cli("list", *at).stdout.splitlines()
    assert [row.split()[:2] for row in listed] == [[second, "cancelled"], [job_id, "running"]]

    swarm.add_worker(name="worker-0")
    watched = swarm_cli("status", job_id, "--watch", *at)
    assert watched.returncode == 0, watched.stderr
    assert "done" in watched.stdout and "5 done, 0 failed of 5" in watched.stdout
    out = tmp_path / "out.jsonl"
    written = swarm_cli("results", job_id, "-o", str(out), *at)
    assert written.returncode == 0, written.stderr
    rows = [json.loads(row) for row in out.read_text().splitlines()]
    assert [(r["line"], r["id"], r["usage"]["completion_tokens"]) for r in rows] == [
        (i + 1, f"c{i}", 3) for i in range(5)
    ]
    assert swarm_cli("status", second, *at).stdout.startswith(f"{second}  cancelled  0 done")  # nothing ran


def test_batch_calls_need_the_api_key_of_a_coordinator_that_has_one(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(
        workers=0, coordinator_args=("--api-key", "batch-secret-1"), client_options={"api_key": "batch-secret-1"}
    )
    with BatchClient(swarm.address) as anonymous, pytest.raises(SwarmCallError) as caught:
        anonymous.list()
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    with BatchClient(swarm.address, api_key="batch-secret-1") as client:
        job = client.submit(greedy_lines(1, 2))
        assert [j.job_id for j in client.list()] == [job.job_id]
    refused = swarm_cli("status", job.job_id, "--coordinator", swarm.address)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    allowed = swarm_cli("status", job.job_id, "--coordinator", swarm.address, "--api-key", "batch-secret-1")
    assert allowed.returncode == 0 and allowed.stdout.startswith(job.job_id)
