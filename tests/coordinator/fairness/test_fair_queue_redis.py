"""Fair queuing in Redis: the enqueue and claim scripts follow the pure rule, across coordinators sharing a queue."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.fairness.queue_tags import BATCH, advance_class_time, queue_tag
from swarm.coordinator.request_store import RequestStore
from swarm.shared.types import GenerationRequest, SamplingParams


def request(request_id: str, tenant: str, weight: float = 1.0, priority: int = 0) -> GenerationRequest:
    return GenerationRequest(request_id, "m", "p", 4, SamplingParams(), tenant=tenant, weight=weight, priority=priority)


def test_scores_in_redis_are_the_pure_rules_tags_across_two_coordinators(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        stores = [RequestStore(redis, "c1"), RequestStore(redis, "c2")]
        class_time: float | None = None
        finish: dict[str, float] = {}
        try:
            for i in range(12):
                tenant, weight = ("flood", 1.0) if i % 3 else ("quiet", 3.0)
                _, score = await stores[i % 2].enqueue(request(f"r{i}", tenant, weight))
                tag = queue_tag(0, weight, class_time, finish.get(tenant))
                finish[tenant] = tag.tenant_finish
                assert score == tag.score
                if i % 4 == 3:  # the other coordinator dispatches the head of the queue
                    head = (await stores[(i + 1) % 2].waiting(1))[0]
                    head_score = (await stores[0].load(head)).score  # type: ignore[union-attr]
                    assert await stores[(i + 1) % 2].claim_many([(head, "w")]) == [True]
                    class_time = advance_class_time(class_time, head_score)
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_a_flooding_tenant_cannot_push_a_later_quiet_request_back(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = RequestStore(redis, "c1")
        try:
            for i in range(50):
                await store.enqueue(request(f"flood-{i}", "flood"))
            await store.claim_many([(f"flood-{i}", "w") for i in range(5)])
            await store.enqueue(request("quiet-0", "quiet"))
            await store.enqueue(request("batch-0", "", priority=BATCH))
            waiting = await store.waiting(100)
            assert waiting.index("quiet-0") <= 1
            assert waiting[-1] == "batch-0"
            stored = await store.load("quiet-0")
            assert stored is not None
            assert await store.claim_many([("quiet-0", "w")]) == [True]
            await store.requeue("quiet-0", stored.score)  # its worker failed: it keeps its place
            assert (await store.waiting(100)).index("quiet-0") == 0
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_tenants_active_lately_are_counted_across_coordinators_and_old_ones_forgotten(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        first, second = RequestStore(redis, "c1"), RequestStore(redis, "c2")
        try:
            await first.enqueue(request("a-1", "a"))
            await second.enqueue(request("b-1", "b"))
            await second.enqueue(request("b-2", "b"))
            assert await first.active_tenants(30.0) == {"a", "b"}
            await redis.hset(keys.FAIR_TENANT_SEEN, "gone", 1)  # queued long ago
            assert await second.active_tenants(30.0) == {"a", "b"}
            assert not await redis.hexists(keys.FAIR_TENANT_SEEN, "gone")
        finally:
            await redis.aclose()

    asyncio.run(scenario())
