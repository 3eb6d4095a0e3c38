"""Worker identity in the registry on a real Redis: a live id is not for another joiner, and only the
worker that joined, proven by its secret, heartbeats and leaves under it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.registry import Standing, WorkerRegistry
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad, WorkerState

pytestmark = pytest.mark.timeout(30)

WORKER = WorkerId("pc1-7000")
Scenario = Callable[[WorkerRegistry, Redis], Awaitable[None]]


def with_registry(redis_url: str, scenario: Scenario, ttl_s: float = 30.0) -> None:
    async def run() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            await scenario(WorkerRegistry(redis, ttl_s), redis)
        finally:
            await redis.aclose()

    asyncio.run(run())


def at(address: str) -> WorkerInfo:
    return WorkerInfo(WORKER, address, "tiny", 512, 4, 1)


async def addresses(registry: WorkerRegistry) -> list[str]:
    return [v.info.address for v in await registry.snapshot()]


async def refused(call: Awaitable[object]) -> SwarmError:
    with pytest.raises(SwarmError) as refusal:
        await call
    return refusal.value


def test_a_live_id_is_refused_to_a_second_joiner_even_after_a_failed_call(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, redis: Redis) -> None:
        await registry.join(at("10.0.0.1:7000"))
        taken = await refused(registry.join(at("10.6.6.6:7000")))
        assert taken.code is ErrorCode.ALREADY_EXISTS
        assert "worker_id: 'pc1-7000'" in taken.message and "--worker-id" in taken.message
        await registry.mark_down(WORKER)  # one failed call does not free the id
        assert (await refused(registry.join(at("10.6.6.6:7000")))).code is ErrorCode.ALREADY_EXISTS
        assert await addresses(registry) == ["10.0.0.1:7000"]

    with_registry(redis_url, scenario)


def test_only_one_of_many_simultaneous_joiners_gets_an_id(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, redis: Redis) -> None:
        joins = [registry.join(at(f"10.0.0.{i}:7000")) for i in range(10)]
        outcomes = await asyncio.gather(*joins, return_exceptions=True)
        secrets = [o for o in outcomes if isinstance(o, str)]
        assert len(secrets) == 1
        assert all(
            isinstance(o, SwarmError) and o.code is ErrorCode.ALREADY_EXISTS for o in outcomes if o not in secrets
        )
        assert await registry.heartbeat(WORKER, secrets[0], WorkerLoad()) is Standing.MEMBER

    with_registry(redis_url, scenario)


def test_heartbeats_and_leaves_without_the_workers_secret_are_refused_and_change_nothing(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, redis: Redis) -> None:
        secret = await registry.join(at("10.0.0.1:7000"))
        await registry.mark_down(WORKER)
        for wrong in ("", "guess", secret + "x"):
            refusal = await refused(registry.heartbeat(WORKER, wrong, WorkerLoad(slots_busy=4)))
            assert refusal.code is ErrorCode.PERMISSION_DENIED
            assert refusal.message.startswith("worker_secret:")
            assert not wrong or wrong not in refusal.message  # never echoed, nor logged
            assert (await refused(registry.leave(WORKER, wrong))).code is ErrorCode.PERMISSION_DENIED
        (view,) = await registry.snapshot()
        assert view.state is WorkerState.DOWN  # no refused heartbeat brought it back
        assert await registry.heartbeat(WORKER, secret, WorkerLoad(slots_busy=1)) is Standing.MEMBER
        await registry.leave(WORKER, secret)
        assert await registry.snapshot() == []

    with_registry(redis_url, scenario)


def test_redis_keeps_a_digest_of_the_secret_not_the_secret(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, redis: Redis) -> None:
        secret = await registry.join(at("10.0.0.1:7000"))
        assert len(secret) >= 32
        stored = [str(await redis.dump(key)) for key in await redis.keys("*")]
        assert stored and not any(secret in value for value in stored)

    with_registry(redis_url, scenario)


def test_an_id_silent_for_the_ttl_can_be_joined_again_and_its_old_secret_is_refused(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, redis: Redis) -> None:
        old = await registry.join(at("10.0.0.1:7000"))
        deadline = time.monotonic() + 5
        while await redis.exists(keys.worker_claim_key(WORKER)):
            assert time.monotonic() < deadline, "the claim never expired"
            await asyncio.sleep(0.05)
        new = await registry.join(at("10.0.0.2:7000"))
        assert new != old
        assert await addresses(registry) == ["10.0.0.2:7000"]
        assert (await refused(registry.heartbeat(WORKER, old, WorkerLoad()))).code is ErrorCode.PERMISSION_DENIED
        assert await registry.heartbeat(WORKER, new, WorkerLoad()) is Standing.MEMBER

    with_registry(redis_url, scenario, ttl_s=0.3)


def test_a_worker_silent_for_the_ttl_comes_back_with_its_secret_while_nobody_took_its_id(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, redis: Redis) -> None:
        secret = await registry.join(at("10.0.0.1:7000"))
        await redis.delete(keys.worker_claim_key(WORKER), keys.heartbeat_key(WORKER))  # as if silent for the TTL
        assert await registry.heartbeat(WORKER, secret, WorkerLoad()) is Standing.MEMBER
        assert (await refused(registry.join(at("10.6.6.6:7000")))).code is ErrorCode.ALREADY_EXISTS

    with_registry(redis_url, scenario)


def test_a_forgotten_or_secretless_entry_makes_its_worker_join_again(redis_url: str) -> None:
    async def scenario(registry: WorkerRegistry, redis: Redis) -> None:
        secret = await registry.join(at("10.0.0.1:7000"))
        await redis.hdel(keys.WORKER_SECRETS, WORKER)  # an entry written before workers had secrets
        assert await registry.heartbeat(WORKER, secret, WorkerLoad()) is Standing.UNKNOWN
        await registry.forget(WORKER)
        assert await redis.keys("*") == []
        assert await registry.heartbeat(WORKER, secret, WorkerLoad()) is Standing.UNKNOWN
        await registry.leave(WORKER, secret)  # leaving when already gone is no error
        await registry.join(at("10.0.0.1:7000"))

    with_registry(redis_url, scenario)
