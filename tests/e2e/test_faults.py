"""Faults a fleet of workstations sees daily: a worker dies, a worker leaves, the coordinator restarts."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import redis

from swarm.client import SwarmCallError
from swarm.coordinator import redis_keys
from swarm.launch.local_swarm import wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]


def test_two_workers_share_work_and_a_killed_one_goes_down(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=2)
    with swarm.client() as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: client.generate(f"Hello world {i}", max_tokens=40), range(8)))
    used = {r.finished.worker_id for r in results}
    assert used == set(swarm.up_workers())
    assert len(used) == 2

    killed_at = time.monotonic()
    swarm.processes.processes[-1].kill()  # the second worker, with no chance to deregister
    wait_until(lambda: len(swarm.up_workers()) == 1, 5, "the killed worker to be marked down")
    assert time.monotonic() - killed_at < 5
    survivor = swarm.up_workers()[0]
    with swarm.client() as client:
        status = client.status()
        states = {w.info.worker_id: "up" if w.up else "down" for w in status.workers}
        assert sorted(states.values()) == ["down", "up"]
        for i in range(4):
            completion = client.generate(f"after the crash {i}", max_tokens=8)
            assert completion.finished.worker_id == survivor


def test_a_request_in_flight_on_a_killed_worker_before_any_token_is_served_elsewhere(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    with swarm.client() as client:
        assert client.generate("warm up", max_tokens=2).finished.completion_tokens == 2
    second = swarm.add_worker(name="worker-late")
    swarm.wait_for_workers(2)
    second.kill()
    # The coordinator may still believe the dead worker is up for a heartbeat TTL; requests
    # sent to it fail to connect and are requeued onto the live worker.
    with swarm.client() as client, ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: client.generate(f"prompt {i}", max_tokens=6), range(6)))
    assert all(r.finished.completion_tokens == 6 for r in results)


def test_queued_request_survives_a_coordinator_restart(make_swarm: MakeSwarm, redis_url: str) -> None:
    swarm = make_swarm(workers=0, coordinator_args=("--no-worker-wait", "120", "--default-model", "tiny"))
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    outcome: dict[str, object] = {}

    def first_attempt() -> None:
        with swarm.client(retries=0) as client:
            try:
                client.generate("Hello world", max_tokens=12, temperature=0.0, request_id="survivor-1")
            except SwarmCallError as exc:
                outcome["error"] = exc.code

    caller = threading.Thread(target=first_attempt)
    caller.start()
    wait_until(lambda: store.zscore(redis_keys.QUEUE, "survivor-1") is not None, 10, "the request to be queued")
    swarm.coordinator.kill()
    caller.join(10)
    assert outcome["error"] == grpc.StatusCode.UNAVAILABLE  # the client saw the coordinator die
    assert store.zscore(redis_keys.QUEUE, "survivor-1") is not None  # but the request is still in Redis

    swarm.start_coordinator("--no-worker-wait", "120", "--default-model", "tiny")
    swarm.wait_for_coordinator()
    swarm.add_worker(name="worker-after-restart")
    swarm.wait_for_workers(1)
    # Served with no client attached: the result waits in Redis for the client to come back.
    wait_until(lambda: store.hget(redis_keys.request_key("survivor-1"), "state") == "done", 30, "the result")
    with swarm.client() as client:
        resumed = client.generate("Hello world", max_tokens=12, temperature=0.0, request_id="survivor-1")
        fresh = client.generate("Hello world", max_tokens=12, temperature=0.0)
    assert resumed.text == fresh.text
    assert resumed.finished.completion_tokens == 12
    # Delivered: kept only for the grace in which a client that has not read it all can still resume.
    assert 0 < store.ttl(redis_keys.request_key("survivor-1")) <= redis_keys.DELIVERED_GRACE_S
    store.close()


def test_sigterm_worker_finishes_in_flight_work_and_deregisters(make_swarm: MakeSwarm, slow_model: Path) -> None:
    # The slow model decodes slowly enough that the request is surely mid-stream at SIGTERM.
    swarm = make_swarm(workers=1, model=slow_model)
    worker = swarm.processes.processes[-1]
    assert worker.process is not None
    with swarm.client() as client:
        events = client.stream("Write a long story about the sea.", max_tokens=120, temperature=0.0)
        first = next(events)
        assert isinstance(first, TextPiece)
        worker.process.send_signal(signal.SIGTERM)
        rest = list(events)
        finished = rest[-1]
        assert isinstance(finished, Finished)
        assert finished.completion_tokens == 120  # the drain let it finish
        assert worker.process.wait(30) == 0
        assert client.status().workers == []  # it left the registry instead of going down


@pytest.mark.parametrize("content", [None, b"definitely not a gguf"])
def test_worker_with_a_bad_model_exits_with_a_one_line_error(make_swarm: MakeSwarm, tmp_path, content) -> None:  # type: ignore[no-untyped-def]
    swarm = make_swarm(workers=0)
    model = tmp_path / "broken.gguf"
    if content is not None:
        model.write_bytes(content)
    worker = swarm.add_worker(name="broken", model=model)
    assert worker.process is not None
    assert worker.process.wait(60) == 2
    stderr = worker.log_path.read_text().strip().splitlines() if worker.log_path else []
    assert stderr[-1].startswith("swarm join: error:")
    assert str(model) in stderr[-1]
    assert "Traceback" not in "\n".join(stderr)


def test_worker_with_a_wrong_token_is_refused(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0, coordinator_args=("--token", "right-secret"))
    intruder = swarm.add_worker("--token", "wrong-secret", name="intruder")
    assert intruder.process is not None
    assert intruder.process.wait(60) == 2
    intruder.stop()
    log = intruder.log_path.read_text() if intruder.log_path else ""
    assert "refused to join" in log and "join token" in log
    member = swarm.add_worker("--token", "right-secret", name="member")
    assert member.alive
    swarm.wait_for_workers(1)
