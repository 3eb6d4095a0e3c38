"""KeyLimits' scripts on a real Redis, driven with given times: bucket arithmetic, settling, stream leases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.tenancy.key_limits import STREAM_LEASE_MS, KeyLimits, Limits, Refusal
from swarm.coordinator.tenancy.key_record import KeyRecord

pytestmark = pytest.mark.timeout(30)

T0 = 1_800_000_000_000  # a fixed "now" in ms: the scripts take time as an argument


def with_limits(redis_url: str, scenario: Callable[[KeyLimits, Redis], Awaitable[None]]) -> None:
    async def run() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            for digest in ("k", "other"):  # the keys' records, as KeyStore keeps them
                await redis.hset(keys.api_key_key(digest), mapping=KeyRecord(name=digest).to_hash())
            await scenario(KeyLimits(redis), redis)
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_requests_per_minute_is_a_bucket_refilling_one_request_per_sixtieth_of_a_minute(redis_url: str) -> None:
    limits = Limits(requests_per_minute=3, tokens_per_minute=0, max_streams=0)

    async def scenario(key_limits: KeyLimits, _redis: Redis) -> None:
        admitted = [await key_limits.admit("k", limits, 10, f"s{i}", T0) for i in range(3)]
        assert admitted == [None, None, None]
        # Empty: one request comes back every 20 s (60 s / 3).
        assert await key_limits.admit("k", limits, 10, "s3", T0) == Refusal("requests", 20)
        assert await key_limits.admit("k", limits, 10, "s3", T0 + 15_000) == Refusal("requests", 5)
        assert await key_limits.admit("k", limits, 10, "s3", T0 + 20_000) is None
        # A full minute idle refills the bucket to its size, never beyond.
        later = T0 + 10 * 60_000
        assert [await key_limits.admit("k", limits, 10, f"t{i}", later) for i in range(4)][-1] == Refusal(
            "requests", 20
        )
        # Another key has buckets of its own.
        assert await key_limits.admit("other", limits, 10, "s", T0) is None

    with_limits(redis_url, scenario)


def test_tokens_are_reserved_at_admission_and_settled_to_what_was_used(redis_url: str) -> None:
    limits = Limits(requests_per_minute=0, tokens_per_minute=600, max_streams=0)  # 10 tokens a second

    async def scenario(key_limits: KeyLimits, redis: Redis) -> None:
        assert await key_limits.admit("k", limits, 500, "a", T0) is None  # 100 left
        assert await key_limits.admit("k", limits, 500, "b", T0) is None  # admitted while not empty: -400
        assert await key_limits.admit("k", limits, 1, "c", T0) == Refusal("tokens", 41)  # (400 + 1) / 10 per s
        # a used 40 prompt + 60 completion tokens of its 500: 400 refunded, leaving 0 ...
        await key_limits.settle("k", limits, 100 - 500, "a", T0)
        assert float(await redis.hget(keys.key_buckets_key("k"), "tokens")) == pytest.approx(0)
        # ... and 1 s later 10 tokens have come back.
        assert await key_limits.admit("k", limits, 1, "c", T0 + 1000) is None
        assert float(await redis.hget(keys.key_buckets_key("k"), "tokens")) == pytest.approx(9)
        # A request that used more than it reserved pays the rest.
        await key_limits.settle("k", limits, 50, "c", T0 + 1000)
        assert await key_limits.admit("k", limits, 1, "d", T0 + 1000) == Refusal("tokens", 5)  # (41 + 1) / 10

    with_limits(redis_url, scenario)


def test_stream_slots_are_leases_freed_by_settling_or_by_lapsing(redis_url: str) -> None:
    limits = Limits(requests_per_minute=0, tokens_per_minute=0, max_streams=2)

    async def scenario(key_limits: KeyLimits, redis: Redis) -> None:
        assert await key_limits.admit("k", limits, 10, "a", T0) is None
        assert await key_limits.admit("k", limits, 10, "b", T0) is None
        assert await key_limits.admit("k", limits, 10, "c", T0) == Refusal("streams", 1)
        await key_limits.settle("k", limits, 0, "a", T0 + 5)
        assert await key_limits.admit("k", limits, 10, "c", T0 + 10) is None
        # Renewed leases hold; a lease its coordinator stopped renewing (it crashed) lapses.
        await key_limits.renew({"k": ["c"]}, T0 + STREAM_LEASE_MS - 1)
        assert await key_limits.admit("k", limits, 10, "d", T0 + STREAM_LEASE_MS + 1) is None  # b lapsed
        assert set(await redis.zrange(keys.key_streams_key("k"), 0, -1)) == {"c", "d"}
        assert await key_limits.admit("k", limits, 10, "e", T0 + STREAM_LEASE_MS + 2) == Refusal("streams", 1)

    with_limits(redis_url, scenario)


def test_a_refused_request_takes_nothing_from_any_limit(redis_url: str) -> None:
    limits = Limits(requests_per_minute=1, tokens_per_minute=100, max_streams=5)

    async def scenario(key_limits: KeyLimits, redis: Redis) -> None:
        assert await key_limits.admit("k", limits, 10, "a", T0) is None
        assert await key_limits.admit("k", limits, 10, "b", T0) == Refusal("requests", 60)
        assert float(await redis.hget(keys.key_buckets_key("k"), "tokens")) == pytest.approx(90)
        assert await redis.zcard(keys.key_streams_key("k")) == 1

    with_limits(redis_url, scenario)


def test_a_revoked_expired_or_unknown_key_is_refused_before_any_limit(redis_url: str) -> None:
    unlimited = Limits(requests_per_minute=0, tokens_per_minute=0, max_streams=0)

    async def scenario(key_limits: KeyLimits, redis: Redis) -> None:
        assert await key_limits.admit("k", unlimited, 10, "a", T0) is None
        await redis.hset(keys.api_key_key("k"), "expires_ms", T0 + 1000)
        assert await key_limits.admit("k", unlimited, 10, "b", T0 + 999) is None
        assert await key_limits.admit("k", unlimited, 10, "c", T0 + 1000) == Refusal("expired", 0)
        await redis.hset(keys.api_key_key("other"), "revoked", "1")
        assert await key_limits.admit("other", unlimited, 10, "a", T0) == Refusal("revoked", 0)
        assert await key_limits.admit("nobody", unlimited, 10, "a", T0) == Refusal("revoked", 0)

    with_limits(redis_url, scenario)
