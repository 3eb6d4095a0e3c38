"""KeyWatch: ends the open requests of a key revoked (or expired) on any coordinator within CHECK_EVERY_S.

A revoke is a field of the key's record in Redis (KeyStore.revoke), set through whichever
coordinator the admin called. Each coordinator reads the records of the created keys it has
requests open for, all in one pipelined round trip every CHECK_EVERY_S while it has any (and at
once when a revoke passes through it): the cost is per key and round, never per token. The open
requests of a key that lets nobody in any more end for every client with UNAUTHENTICATED saying
why, their worker runs cancelled and slots freed (Dispatcher.end_requests), as a hang-up does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from swarm.coordinator.tenancy.caller import Access
from swarm.coordinator.tenancy.key_record import record_refusal
from swarm.coordinator.tenancy.key_store import KeyStore
from swarm.shared.errors import ErrorCode, SwarmError

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0

# Ends the requests of these ids that this coordinator owns with the error; returns how many it ended.
EndRequests = Callable[[list[str], SwarmError], Awaitable[int]]


@dataclass
class _OpenRequests:
    name: str  # the key's
    requests: Counter[str] = field(default_factory=Counter)  # request id -> clients following it here


class KeyWatch:
    """Knows which created keys have requests open here; owns the loop that ends a revoked key's requests."""

    def __init__(self, store: KeyStore, end: EndRequests, every_s: float = CHECK_EVERY_S) -> None:
        self._store = store
        self._end = end
        self._every_s = every_s
        self._open: dict[str, _OpenRequests] = {}  # by key digest
        self._wake = asyncio.Event()

    def opened(self, access: Access, request_id: str) -> bool:
        """Watches a request a client follows here; False, watching nothing, unless a created key sent it."""
        if not access.digest:
            return False
        self._open.setdefault(access.digest, _OpenRequests(access.caller.name)).requests[request_id] += 1
        return True

    def closed(self, access: Access, request_id: str) -> None:
        """The client of a request opened() watched has left it."""
        watched = self._open.get(access.digest)
        if watched is None:
            return
        watched.requests[request_id] -= 1
        if watched.requests[request_id] <= 0:
            del watched.requests[request_id]
        if not watched.requests:
            del self._open[access.digest]

    def check_soon(self) -> None:
        """A key was revoked through this coordinator: check now rather than at the next round."""
        self._wake.set()

    async def check(self) -> int:
        """One round: ends the open requests of every key that lets nobody in now; how many it ended."""
        digests = list(self._open)
        if not digests:
            return 0
        records = await self._store.lookup_many(digests)
        now_ms = int(time.time() * 1000)
        ended = 0
        for digest, record in zip(digests, records, strict=True):
            watched = self._open.get(digest)
            why = record_refusal(watched.name, record, now_ms) if watched is not None else ""
            if watched is None or not why:
                continue
            count = await self._end(list(watched.requests), SwarmError(ErrorCode.UNAUTHENTICATED, why))
            if count:
                log.info("%s: ended its %d open requests here", why, count)
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
                log.warning("cannot read the records of keys with open requests: %s", exc)
