"""KeyWatch on a real Redis: a revoked, expired or deleted key's requests end; other keys' run on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.tenancy.key_record import KeyRecord
from swarm.coordinator.tenancy.key_store import KeyStore, key_digest
from swarm.coordinator.tenancy.key_watch import KeyWatch
from swarm.shared.errors import ErrorCode, SwarmError

pytestmark = pytest.mark.timeout(30)


class Requests:
    """Stands in for the Dispatcher: the requests it owns by tenant, and those it was asked to end."""

    def __init__(self, owned: dict[str, list[str]]) -> None:
        self.owned = owned
        self.ended: dict[str, SwarmError] = {}  # request id -> its error

    def by_tenant(self) -> dict[str, list[str]]:
        return {tenant: list(ids) for tenant, ids in self.owned.items()}

    async def end(self, request_ids: list[str], error: SwarmError) -> int:
        """Ends them as the dispatcher does: they are no longer owned."""
        for tenant, ids in self.owned.items():
            self.owned[tenant] = [i for i in ids if i not in request_ids]
        self.ended.update(dict.fromkeys(request_ids, error))
        return len(request_ids)


def with_store(redis_url: str, scenario: Callable[[KeyStore, Redis], Awaitable[None]]) -> None:
    async def run() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            await scenario(KeyStore(redis), redis)
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_a_revoked_keys_requests_end_and_no_other_keys(redis_url: str) -> None:
    async def scenario(store: KeyStore, _redis: Redis) -> None:
        await store.create(KeyRecord("alice"))
        await store.create(KeyRecord("bob"))
        # A static key's tenant and the keyless one are no created key's: nothing to read, never revoked.
        requests = Requests({"alice": ["a1", "a2"], "bob": ["b1"], "key-0123abcd": ["s1"], "": ["n1"]})
        watch = KeyWatch(store, requests.by_tenant, requests.end)
        assert await watch.check() == 0 and requests.ended == {}

        await store.revoke("alice")
        assert await watch.check() == 2
        assert set(requests.ended) == {"a1", "a2"}
        error = requests.ended["a1"]
        assert error.code is ErrorCode.UNAUTHENTICATED and error.message == "API key 'alice' was revoked"
        assert await watch.check() == 0  # ended: nothing of alice's is left here

    with_store(redis_url, scenario)


def test_an_expired_or_deleted_keys_requests_end(redis_url: str) -> None:
    async def scenario(store: KeyStore, redis: Redis) -> None:
        await store.create(KeyRecord("expired", expires_ms=int(time.time() * 1000) - 1))
        gone = await store.create(KeyRecord("gone"))
        await redis.delete(keys.api_key_key(key_digest(gone)))  # its record lost, its name still taken
        requests = Requests({"expired": ["e1"], "gone": ["g1"]})
        assert await KeyWatch(store, requests.by_tenant, requests.end).check() == 2
        assert requests.ended["g1"].message == "API key 'gone' was revoked"
        assert requests.ended["e1"].message.startswith("API key 'expired' expired at ")

    with_store(redis_url, scenario)


def test_a_revoke_through_this_coordinator_is_checked_at_once(redis_url: str) -> None:
    async def scenario(store: KeyStore, _redis: Redis) -> None:
        await store.create(KeyRecord("now"))
        requests = Requests({"now": ["n1"]})
        watch = KeyWatch(store, requests.by_tenant, requests.end, every_s=3600)  # only check_soon explains an end
        loop = asyncio.create_task(watch.run())
        try:
            await store.revoke("now")
            watch.check_soon()
            async with asyncio.timeout(5):
                while not requests.ended:
                    await asyncio.sleep(0.01)
            assert list(requests.ended) == ["n1"]
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop

    with_store(redis_url, scenario)
