"""A request's queueing in one Redis round trip: the id checked, the queue bound, and a free worker claimed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.request_store import RequestStore
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import GenerationRequest, SamplingParams
from tests.coordinator.core_harness import (
    FakeWorker,
    collect,
    core_config,
    expected_tokens,
    left_redis,
    request,
    run,
    running_core,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


def generation(request_id: str, prompt: str = "Hi") -> GenerationRequest:
    return GenerationRequest(request_id, "tiny", prompt, 4, SamplingParams())


def on_store(redis_url: str, scenario: Callable[[RequestStore, Redis], Awaitable[None]]) -> None:
    async def main() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            await scenario(RequestStore(redis, "me"), redis)
        finally:
            await redis.aclose()

    asyncio.run(main())


def test_an_id_redis_holds_is_reported_known_and_left_as_it_was(redis_url: str) -> None:
    async def scenario(store: RequestStore, redis: Redis) -> None:
        await store.enqueue(generation("r", prompt="first"))
        before = await redis.hgetall(keys.request_key("r"))
        admitted = await store.admit(generation("r", prompt="second"), if_new=True)
        assert admitted.known and not admitted.claimed
        assert await redis.hgetall(keys.request_key("r")) == before
        assert await redis.zcard(keys.QUEUE) == 1
        assert not (await store.admit(generation("other"), if_new=True)).known  # a new id is queued

    on_store(redis_url, scenario)


def test_a_full_queue_refuses_writing_nothing(redis_url: str) -> None:
    async def scenario(store: RequestStore, redis: Redis) -> None:
        for request_id in ("a", "b"):
            await store.enqueue(generation(request_id))
        admitted = await store.admit(generation("c"), max_queue=2)
        assert admitted.full_at == 2 and not admitted.known
        assert not await redis.exists(keys.request_key("c"))
        assert await redis.zcard(keys.QUEUE) == 2
        assert (await store.admit(generation("c"), max_queue=3)).score > 0

    on_store(redis_url, scenario)


def test_a_request_first_in_the_queue_is_claimed_for_the_worker_named(redis_url: str) -> None:
    async def scenario(store: RequestStore, redis: Redis) -> None:
        admitted = await store.admit(generation("r"), claim_for="w1")
        assert admitted.claimed
        stored = await store.load("r")
        assert stored is not None and stored.state is keys.RequestState.RUNNING and stored.owner == "me"
        assert (await redis.hgetall(keys.request_key("r")))["worker"] == "w1"
        assert await redis.sismember(keys.RUNNING, "r")
        assert await redis.zscore(keys.QUEUE, "r") is None
        # As a claim by the dispatcher's pass: the class's virtual time moved up to the request's tag.
        assert float(await redis.hget(keys.FAIR_CLASS_TIME, str(stored.request.priority))) == admitted.score

    on_store(redis_url, scenario)


def test_a_request_behind_another_in_the_queue_is_left_queued(redis_url: str) -> None:
    async def scenario(store: RequestStore, redis: Redis) -> None:
        await store.enqueue(generation("ahead"))
        admitted = await store.admit(generation("behind"), claim_for="w1")
        assert not admitted.claimed
        assert await redis.zscore(keys.QUEUE, "behind") == admitted.score
        stored = await store.load("behind")
        assert stored is not None and stored.state is keys.RequestState.QUEUED
        assert not await redis.sismember(keys.RUNNING, "behind")

    on_store(redis_url, scenario)


def test_a_request_for_an_idle_worker_runs_from_its_enqueue_and_one_behind_a_busy_one_waits(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", slots=1, hold_at=2)
        async with running_core(redis_url, [worker]) as core:
            first = asyncio.create_task(collect(core.service.generate(request("first"))))
            await wait_for(lambda: worker.reached.get("first") == 2, "first running")
            assert core.dispatcher.claimed_at_admission == 1
            second = asyncio.create_task(collect(core.service.generate(request("second", max_tokens=3))))
            async with asyncio.timeout(5):
                while await core.redis.zscore(keys.QUEUE, "second") is None:
                    await asyncio.sleep(0.01)
            worker.release.set()
            assert (await first)[0] == expected_tokens(8)
            assert (await second)[0] == expected_tokens(3)
            assert core.dispatcher.claimed_at_admission == 1  # the second went by the dispatcher's pass
            assert [r.request_id for r in worker.runs] == ["first", "second"]
            assert await left_redis(core, "first") and await left_redis(core, "second")

    run(scenario)


def test_the_queue_bound_refuses_with_resource_exhausted_naming_the_count(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", slots=1, hold_at=1)
        async with running_core(redis_url, [worker], core_config(max_queue=1)) as core:
            blocker = asyncio.create_task(collect(core.service.generate(request("blocker", max_tokens=2))))
            await wait_for(lambda: worker.reached.get("blocker") == 1, "the blocker holding the only slot")
            waiting = asyncio.create_task(collect(core.service.generate(request("waiting", max_tokens=2))))
            async with asyncio.timeout(5):
                while await core.redis.zscore(keys.QUEUE, "waiting") is None:
                    await asyncio.sleep(0.01)
            for request_id in ("with-id", ""):  # the id checked in the same round trip, or no id at all
                with pytest.raises(SwarmError) as refused:
                    await collect(core.service.generate(request(request_id)))
                assert refused.value.code is ErrorCode.RESOURCE_EXHAUSTED
                assert "1 requests are waiting" in str(refused.value)
            worker.release.set()
            await asyncio.gather(blocker, waiting)
            assert not await core.redis.exists(keys.request_key("with-id"))

    run(scenario)
