"""PieceJournal on a real Redis: saves from many streams share round trips, read back in order, never twice."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.ownership.request_leases import TakeoverOutcome
from swarm.coordinator.relay.piece_journal import PieceRefused
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


def test_a_coordinator_whose_request_was_taken_over_writes_none_of_its_pieces(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        old = RequestStore(redis, "old-owner")
        new = RequestStore(redis, "new-owner")
        try:
            for request_id in ("lost", "kept"):
                await old.enqueue(GenerationRequest(request_id, "m", "p", 8, SamplingParams()))
            await old.save_piece("lost", 0, piece(0))
            await redis.delete(keys.request_lease_key("lost"))  # lapsed, as when Redis was away for longer
            taken = await new.leases.take_over("lost")
            assert taken.outcome is TakeoverOutcome.TAKEN and taken.pieces == 1
            # One batch for both: the taken-over request's piece is refused, the other's saved.
            results = await asyncio.gather(
                old.save_piece("lost", 1, piece(1)), old.save_piece("kept", 0, piece(0)), return_exceptions=True
            )
            assert isinstance(results[0], PieceRefused) and results[1] is None, results
            assert await redis.hkeys(keys.request_pieces_key("lost")) == ["0"]
            await new.save_piece("lost", 1, piece(7))  # the new owner's run goes on from there
            stored = await new.load("lost")
            assert stored is not None and stored.sent == (piece(0), piece(7))
        finally:
            await old.close()
            await new.close()
            await redis.aclose()

    asyncio.run(scenario())


def test_a_takeover_resumes_after_the_pieces_before_a_gap_and_drops_the_rest(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        old = RequestStore(redis, "old-owner")
        new = RequestStore(redis, "new-owner")
        try:
            await old.enqueue(GenerationRequest("gap", "m", "p", 8, SamplingParams()))
            for i in (0, 1, 3, 4):  # piece 2 lost, as a promoted replica may lose the primary's last writes
                await old.save_piece("gap", i, piece(i))
            await redis.delete(keys.request_lease_key("gap"))  # its owner is gone
            taken = await new.leases.take_over("gap")
            assert taken.outcome is TakeoverOutcome.TAKEN and taken.pieces == 2
            assert sorted(await redis.hkeys(keys.request_pieces_key("gap"))) == ["0", "1"]
        finally:
            await old.close()
            await new.close()
            await redis.aclose()

    asyncio.run(scenario())
