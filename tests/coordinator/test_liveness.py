"""WorkerRegistry and HeartbeatMonitor on a real Redis: joins, heartbeats, expiry, draining, forgetting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.liveness import HeartbeatMonitor
from swarm.coordinator.registry import Standing, WorkerRegistry
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad, WorkerState, WorkerView

pytestmark = pytest.mark.timeout(30)
Scenario = Callable[[WorkerRegistry, HeartbeatMonitor, list[int]], Awaitable[None]]


def with_monitor(redis_url: str, scenario: Scenario, ttl_s: float = 60.0, forget_after_s: float = 600.0) -> None:
    async def run() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            registry = WorkerRegistry(redis, ttl_s)
            monitor = HeartbeatMonitor(registry, 0.05, forget_after_s)
            changes = [0]

            def changed() -> None:
                changes[0] += 1

            monitor.on_change = changed
            await scenario(registry, monitor, changes)
        finally:
            await redis.aclose()

    asyncio.run(run())


def info(worker_id: str) -> WorkerInfo:
    return WorkerInfo(WorkerId(worker_id), f"{worker_id}:1", "m", 512, 4, 1)


def states(monitor: HeartbeatMonitor) -> dict[str, WorkerState]:
    return {v.info.worker_id: v.state for v in monitor.workers}


def test_a_joined_worker_is_up_until_marked_down_and_back_with_its_next_heartbeat(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, monitor: HeartbeatMonitor, changes: list[int]) -> None:
        secret = await registry.join(info("a"))
        await monitor.refresh()
        assert states(monitor) == {"a": WorkerState.UP}
        assert changes == [1]
        await monitor.refresh()
        assert changes == [1]  # nothing changed: no wake-up
        await registry.mark_down(WorkerId("a"))
        await monitor.refresh()
        assert states(monitor) == {"a": WorkerState.DOWN}
        assert changes == [2]
        assert await registry.heartbeat(WorkerId("a"), secret, WorkerLoad(slots_busy=3)) is Standing.MEMBER
        await monitor.refresh()
        assert states(monitor) == {"a": WorkerState.UP}
        assert monitor.workers[0].load.slots_busy == 3

    with_monitor(redis_url, scenario)


def test_a_heartbeat_expires_after_its_ttl(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, monitor: HeartbeatMonitor, changes: list[int]) -> None:
        await registry.join(info("a"))
        await monitor.refresh()
        deadline = time.monotonic() + 5
        while states(monitor)["a"] is WorkerState.UP:
            assert time.monotonic() < deadline, "the heartbeat never expired"
            await asyncio.sleep(0.05)
            await monitor.refresh()
        assert states(monitor) == {"a": WorkerState.DOWN}

    with_monitor(redis_url, scenario, ttl_s=0.3)


def test_draining_and_unknown_workers_get_their_standing(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, monitor: HeartbeatMonitor, changes: list[int]) -> None:
        assert await registry.heartbeat(WorkerId("ghost"), "", WorkerLoad()) is Standing.UNKNOWN
        assert not await registry.drain(WorkerId("ghost"))
        secret = await registry.join(info("a"))
        assert await registry.drain(WorkerId("a"))
        assert await registry.heartbeat(WorkerId("a"), secret, WorkerLoad()) is Standing.DRAINING
        await monitor.refresh()
        assert states(monitor) == {"a": WorkerState.DRAINING}
        redis = Redis.from_url(redis_url, decode_responses=True)
        await redis.delete(keys.worker_claim_key("a"))  # as if it had been silent for the TTL
        await redis.aclose()
        await registry.join(info("a"))  # joining again starts afresh
        await monitor.refresh()
        assert states(monitor) == {"a": WorkerState.UP}

    with_monitor(redis_url, scenario)


def test_a_worker_silent_past_the_forget_time_is_removed(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, monitor: HeartbeatMonitor, changes: list[int]) -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        await registry.join(info("old"))
        await registry.join(info("new"))
        await registry.mark_down(WorkerId("old"))
        await redis.hset(keys.LAST_SEEN, "old", time.time() - 120)
        await redis.aclose()
        await monitor.refresh()
        assert set(states(monitor)) == {"old", "new"}  # seen down once, then forgotten in Redis
        await monitor.refresh()
        assert states(monitor) == {"new": WorkerState.UP}

    with_monitor(redis_url, scenario, forget_after_s=60.0)


def test_the_monitor_loop_survives_redis_errors_and_stops_when_cancelled(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, monitor: HeartbeatMonitor, changes: list[int]) -> None:
        calls = [0]
        real_snapshot = registry.snapshot

        async def flaky() -> list[WorkerView]:
            calls[0] += 1
            if calls[0] == 1:
                raise RedisConnectionError("Redis restarting")
            return await real_snapshot()

        registry.snapshot = flaky  # type: ignore[method-assign]
        await registry.join(info("a"))
        task = asyncio.create_task(monitor.run())
        deadline = time.monotonic() + 5
        while "a" not in states(monitor):
            assert time.monotonic() < deadline, "the loop stopped after a Redis error"
            await asyncio.sleep(0.02)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done, "the loop ignored its cancellation"

    with_monitor(redis_url, scenario)
