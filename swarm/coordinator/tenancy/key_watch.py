"""KeyWatch: ends the requests of a key revoked (or expired) on any coordinator within CHECK_EVERY_S.

A revoke is a field of the key's record in Redis (KeyStore.revoke), set through whichever
coordinator the admin called. Each coordinator reads the records of the created keys whose
requests it owns (queued or running, streamed to a client here or not, batch lines included),
all in one round every CHECK_EVERY_S while it owns any, and at once when a revoke passes
through it: the cost is per key and round, never per token. A key that lets nobody in any more
has its requests ended for every client here with UNAUTHENTICATED saying why, their worker runs
cancelled and slots freed (Dispatcher.end_requests), as a hang-up does. A client following such
a request from another coordinator sees it end there as cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from swarm.coordinator.tenancy.key_record import record_refusal
from swarm.coordinator.tenancy.key_store import KeyStore
from swarm.shared.errors import ErrorCode, SwarmError

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0

# The ids of the requests this coordinator owns, by tenant (the key's name; "" without keys).
OwnedRequests = Callable[[], dict[str, list[str]]]
# Ends the requests of these ids this coordinator still owns with the error; returns how many it ended.
EndRequests = Callable[[list[str], SwarmError], Awaitable[int]]


class KeyWatch:
    """Owns the loop that ends the requests of keys revoked or expired, on this coordinator."""

    def __init__(self, store: KeyStore, owned: OwnedRequests, end: EndRequests, every_s: float = CHECK_EVERY_S) -> None:
        self._store = store
        self._owned = owned
        self._end = end
        self._every_s = every_s
        self._wake = asyncio.Event()

    def check_soon(self) -> None:
        """A key was revoked through this coordinator: check now rather than at the next round."""
        self._wake.set()

    async def check(self) -> int:
        """One round: ends the requests of every key that lets nobody in now; how many it ended."""
        owned = {tenant: ids for tenant, ids in self._owned().items() if tenant}
        if not owned:
            return 0
        records = await self._store.lookup_names(sorted(owned))  # static keys' names are left out
        now_ms = int(time.time() * 1000)
        ended = 0
        for name, record in records.items():
            why = record_refusal(name, record, now_ms)
            if why:
                count = await self._end(owned[name], SwarmError(ErrorCode.UNAUTHENTICATED, why))
                if count:
                    log.info("%s: ended its %d requests here", why, count)
                ended += count
        return ended

    async def run(self) -> None:
        """Checks every CHECK_EVERY_S, or at once when asked, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._every_s)
            self._wake.clear()
            try:
                await self.check()
            except RedisError as exc:  # the next round tries again; new requests are refused by admission
                log.warning("cannot read the records of keys with requests here: %s", exc)
