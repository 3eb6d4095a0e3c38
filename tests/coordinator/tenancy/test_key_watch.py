"""KeyWatch on a real Redis: a revoked, expired or deleted key's open requests end; others' run on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.tenancy.caller import Access, Caller
from swarm.coordinator.tenancy.key_record import KeyRecord
from swarm.coordinator.tenancy.key_store import KeyStore, key_digest
from swarm.coordinator.tenancy.key_watch import KeyWatch
from swarm.shared.errors import ErrorCode, SwarmError

pytestmark = pytest.mark.timeout(30)


class Ended:
    """Stands in for Dispatcher.end_requests: records what it was asked to end."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], SwarmError]] = []

    async def __call__(self, request_ids: list[str], error: SwarmError) -> int:
        self.calls.append((sorted(request_ids), error))
        return len(request_ids)


def access_of(name: str, secret: str) -> Access:
    return Access(Caller(name, "owner-" + name, False, 0, 1.0), KeyRecord(name), key_digest(secret))


def with_watch(redis_url: str, scenario: Callable[[KeyWatch, KeyStore, Ended, Redis], Awaitable[None]]) -> None:
    async def run() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            store, ended = KeyStore(redis), Ended()
            await scenario(KeyWatch(store, ended), store, ended, redis)
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_a_revoked_keys_open_requests_end_and_no_other_keys(redis_url: str) -> None:
    async def scenario(watch: KeyWatch, store: KeyStore, ended: Ended, _redis: Redis) -> None:
        alice, bob = await store.create(KeyRecord("alice")), await store.create(KeyRecord("bob"))
        as_alice, as_bob = access_of("alice", alice), access_of("bob", bob)
        assert watch.opened(as_alice, "r1") and watch.opened(as_alice, "r2") and watch.opened(as_bob, "r3")
        assert watch.opened(as_alice, "r1")  # a second client following r1 here
        assert not watch.opened(Access(Caller("key-static", "o", True, 0, 1.0)), "r4")  # a static key: unrevocable
        assert await watch.check() == 0 and ended.calls == []

        watch.closed(as_alice, "r2")  # its client left: nothing of it to end
        await store.revoke("alice")
        assert await watch.check() == 1
        [(request_ids, error)] = ended.calls
        assert request_ids == ["r1"]
        assert error.code is ErrorCode.UNAUTHENTICATED and error.message == "API key 'alice' was revoked"

        # Once every client of alice's requests has left, her key is no longer read.
        watch.closed(as_alice, "r1")
        watch.closed(as_alice, "r1")
        ended.calls.clear()
        assert await watch.check() == 0 and ended.calls == []
        watch.closed(as_bob, "r3")

    with_watch(redis_url, scenario)


def test_an_expired_or_deleted_keys_open_requests_end(redis_url: str) -> None:
    async def scenario(watch: KeyWatch, store: KeyStore, ended: Ended, redis: Redis) -> None:
        expired = await store.create(KeyRecord("expired", expires_ms=int(time.time() * 1000) - 1))
        gone = await store.create(KeyRecord("gone"))
        watch.opened(access_of("expired", expired), "e1")
        watch.opened(access_of("gone", gone), "g1")
        await redis.delete(keys.api_key_key(key_digest(gone)))  # its record lost (a flushed Redis)
        assert await watch.check() == 2
        why = {request_ids[0]: error.message for request_ids, error in ended.calls}
        assert why["g1"] == "API key 'gone' was revoked"
        assert why["e1"].startswith("API key 'expired' expired at ")


def test_a_revoke_through_this_coordinator_is_checked_at_once(redis_url: str) -> None:
    async def scenario(_watch: KeyWatch, store: KeyStore, ended: Ended, _redis: Redis) -> None:
        watch = KeyWatch(store, ended, every_s=3600)  # rounds so rare that only check_soon can explain an end
        secret = await store.create(KeyRecord("now"))
        watch.opened(access_of("now", secret), "n1")
        loop = asyncio.create_task(watch.run())
        try:
            await store.revoke("now")
            watch.check_soon()
            async with asyncio.timeout(5):
                while not ended.calls:
                    await asyncio.sleep(0.01)
            assert ended.calls[0][0] == ["n1"]
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop

    with_watch(redis_url, scenario)
