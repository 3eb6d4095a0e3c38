"""Usage in Redis: each request counted once, busy time from cumulative heartbeats, windows by the hour."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.usage.usage_store import HOUR_S, UsageStore, current_hour
from swarm.shared.usage_types import TokenCounts, UsageRow, WorkerBusy


def test_a_request_is_counted_once_even_by_two_coordinators(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        first, second = UsageStore(redis), UsageStore(redis)
        try:
            await redis.hset(keys.request_key("r1"), "state", "running")
            tokens = TokenCounts(7, 2, 11, 1)
            assert await first.count("r1", "key-a", "tiny", "w1", tokens)
            assert not await second.count("r1", "key-a", "tiny", "w2", tokens)  # a takeover's second count
            assert await second.count("r2", "key-b", "tiny", "w1", TokenCounts(1, 0, 3, 1))
            report = await first.report(current_hour())
            assert report.rows == (
                UsageRow("key-a", "tiny", "w1", TokenCounts(7, 2, 11, 1)),
                UsageRow("key-b", "tiny", "w1", TokenCounts(1, 0, 3, 1)),
            )
            assert report.by_tenant()["key-a"].completion == 11
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_busy_time_adds_what_each_heartbeat_reports_new_and_survives_a_worker_restart(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = UsageStore(redis)
        try:
            await store.busy("w1", 10.0, 65.0, 0.02)
            await store.busy("w1", 12.5, 65.0, 0.02)
            await store.busy("w1", 1.5, 65.0, 0.02)  # restarted: its count began again
            report = await store.report(current_hour())
            assert report.workers == (WorkerBusy("w1", pytest.approx(14.0), 65.0, 0.02),)  # type: ignore[arg-type]
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_since_sums_only_the_hours_in_the_window(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = UsageStore(redis)
        try:
            now = current_hour()
            old = now - 5
            await redis.hset(keys.usage_hour_key(old), "tokens\tkey-a\ttiny\tw1\tcompletion", 100)
            await redis.zadd(keys.USAGE_HOURS, {str(old): old})
            await store.count("r", "key-a", "tiny", "w1", TokenCounts(0, 0, 5, 1))
            assert (await store.report(now)).by_tenant()["key-a"].completion == 5
            assert (await store.report(old)).by_tenant()["key-a"].completion == 105
            assert (await store.report(old, now_s=(old + 2) * HOUR_S)).seconds == 2 * HOUR_S
        finally:
            await redis.aclose()

    asyncio.run(scenario())
