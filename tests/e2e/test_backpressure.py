"""Backpressure and deadlines: a full queue refuses with a retry hint; a passed deadline frees the work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import redis

from swarm.coordinator import redis_keys
from swarm.launch.local_swarm import wait_until
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
LONG = pb.GenerateRequest(prompt="Once upon a time", max_tokens=900, temperature=0.0)


def slots_busy(swarm: RunningSwarm) -> int:
    with swarm.client() as client:
        return sum(w.load.slots_busy for w in client.status().workers if w.up)


def requests_in_redis(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return len(client.keys(redis_keys.REQUEST_PREFIX + "*"))
    finally:
        client.close()


def test_a_full_queue_refuses_with_resource_exhausted_and_a_retry_hint(make_swarm: MakeSwarm, slow_model: Path) -> None:
    swarm = make_swarm(workers=0, model=slow_model, coordinator_args=("--max-queue", "2"))
    swarm.add_worker("--slots", "1", "--context", "1024")
    swarm.wait_for_workers(1)
    with grpc.insecure_channel(swarm.address) as channel:
        stub = pb_grpc.InferenceStub(channel)
        running = [stub.Generate(LONG, timeout=60)]
        next(running[0])  # it streams on the worker's only slot
        running += [stub.Generate(LONG, timeout=60) for _ in range(2)]  # these two wait: the queue is full
        wait_until(lambda: swarm_queue_depth(swarm) == 2, 10, "two requests waiting")
        with pytest.raises(grpc.RpcError) as refused:
            next(stub.Generate(LONG, timeout=10))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "requests are waiting" in (refused.value.details() or "")
        assert ("retry-after", "2") in tuple(refused.value.trailing_metadata() or ())
        for call in running:
            call.cancel()


def swarm_queue_depth(swarm: RunningSwarm) -> int:
    with swarm.client() as client:
        return client.status().queue_depth


def test_a_passed_deadline_gives_deadline_exceeded_and_frees_the_worker(
    make_swarm: MakeSwarm, slow_model: Path, redis_url: str
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)
    swarm.add_worker("--slots", "1", "--context", "1024")
    swarm.wait_for_workers(1)
    with grpc.insecure_channel(swarm.address) as channel:
        call = pb_grpc.InferenceStub(channel).Generate(LONG, timeout=1.5)
        with pytest.raises(grpc.RpcError) as late:
            for _ in call:
                pass
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: slots_busy(swarm) == 0 and requests_in_redis(redis_url) == 0, 10, "the work to be freed")
    with swarm.client() as client:  # the slot serves the next request at once
        assert client.generate("Hello", max_tokens=4).finished.completion_tokens == 4
