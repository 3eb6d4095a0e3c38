"""A request's state in a real Redis, as RequestStore reads it back: queued, running, queued again, done."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from swarm.coordinator.redis_keys import RequestState
from swarm.coordinator.request_store import RequestStore, StoredResult
from swarm.shared.types import Finished, FinishReason, GenerationRequest, SamplingParams

pytestmark = pytest.mark.timeout(30)


def test_a_request_moves_through_its_states(redis_url: str) -> None:
    async def scenario() -> list[RequestState | None]:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = RequestStore(redis)
        seen: list[RequestState | None] = []

        async def state() -> None:
            stored = await store.load("r1")
            seen.append(None if stored is None else stored.state)

        try:
            _, score = await store.enqueue(GenerationRequest("r1", "tiny", "Hi", 4, SamplingParams()))
            await state()
            assert await store.claim_many([("r1", "w1")]) == [True]
            await state()
            await store.requeue("r1", score)
            await state()
            await store.complete("r1", StoredResult((), Finished(FinishReason.LENGTH, 1, 4)))
            await state()
        finally:
            await redis.aclose()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [RequestState.QUEUED, RequestState.RUNNING, RequestState.QUEUED, RequestState.DONE]
    assert all(type(state) is RequestState for state in seen)  # the enum, not bare strings
