"""PieceJournal on a real Redis: saves from many streams share round trips, read back in order, never twice."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.request_store import RequestStore
from swarm.shared.types import GenerationRequest, SamplingParams, TextPiece

pytestmark = pytest.mark.timeout(30)


def piece(i: int) -> TextPiece:
    return TextPiece(f"t{i} ", (100 + i,))


def test_pieces_of_many_streams_are_saved_together_and_read_back_in_order(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = RequestStore(redis)
        try:
            for stream in range(20):
                await store.enqueue(GenerationRequest(f"r{stream}", "m", "p", 8, SamplingParams()))
            await store.save_piece("r0", 0, piece(0))  # loads the script
            await redis.config_resetstat()

            async def relay(stream: int) -> None:
                for i in range(5):
                    if (stream, i) != (0, 0):
                        await store.save_piece(f"r{stream}", i, piece(i))

            await asyncio.gather(*(relay(s) for s in range(20)))
            stats = await redis.info("commandstats")
            assert stats["cmdstat_evalsha"]["calls"] <= 10  # 99 pieces in about 5 rounds of 20, not 99 round trips

            await store.save_piece("r0", 2, piece(2))  # a retried save after a lost reply
            stored = await store.load("r0")
            assert stored is not None
            assert stored.sent == tuple(piece(i) for i in range(5))
            assert 0 < await redis.ttl(keys.request_pieces_key("r0")) <= keys.RESULT_TTL_S
            await store.forget("r0")
            assert not await redis.exists(keys.request_pieces_key("r0"))
        finally:
            await store.close()
            await redis.aclose()

    asyncio.run(scenario())


def test_pieces_after_a_missing_one_are_not_resumed_from(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = RequestStore(redis)
        try:
            await store.enqueue(GenerationRequest("r", "m", "p", 8, SamplingParams()))
            await store.save_piece("r", 0, piece(0))
            await store.save_piece("r", 2, piece(2))
            stored = await store.load("r")
            assert stored is not None
            assert stored.sent == (piece(0),)
        finally:
            await store.close()
            await redis.aclose()

    asyncio.run(scenario())
