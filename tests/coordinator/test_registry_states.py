"""The worker registry in a real Redis: a worker's state and a heartbeat's standing from join to leave."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from swarm.coordinator.registry import Standing, WorkerRegistry
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad, WorkerState, WorkerView

pytestmark = pytest.mark.timeout(30)

WORKER = WorkerId("pc1-7000")


def test_a_worker_is_up_then_draining_then_down_and_unknown_once_it_left(redis_url: str) -> None:
    async def scenario() -> list[object]:
        redis = Redis.from_url(redis_url, decode_responses=True)
        registry = WorkerRegistry(redis, heartbeat_ttl_s=30.0)
        seen: list[object] = []

        async def state() -> WorkerState:
            (view,) = await registry.snapshot()
            return view.state

        try:
            secret = await registry.join(WorkerInfo(WORKER, "127.0.0.1:7000", "tiny", 512, 4, 1))
            seen += [await state(), await registry.heartbeat(WORKER, secret, WorkerLoad(slots_busy=1))]
            assert await registry.drain(WORKER)
            seen += [await state(), await registry.heartbeat(WORKER, secret, WorkerLoad())]
            await registry.mark_down(WORKER)
            seen.append(await state())  # down wins over draining: nothing runs on a silent worker
            await registry.leave(WORKER, secret)
            seen += [await registry.snapshot(), await registry.heartbeat(WORKER, secret, WorkerLoad())]
            seen.append(await registry.drain(WORKER))
        finally:
            await redis.aclose()
        return seen

    assert asyncio.run(scenario()) == [
        WorkerState.UP,
        Standing.MEMBER,
        WorkerState.DRAINING,
        Standing.DRAINING,
        WorkerState.DOWN,
        [],
        Standing.UNKNOWN,
        False,
    ]


def test_a_view_derives_up_and_draining_from_its_state() -> None:
    info = WorkerInfo(WORKER, "127.0.0.1:7000", "tiny", 512, 4, 1)
    assert [(WorkerView(info, state=s).up, WorkerView(info, state=s).draining) for s in WorkerState] == [
        (True, False),
        (True, True),
        (False, False),
    ]
