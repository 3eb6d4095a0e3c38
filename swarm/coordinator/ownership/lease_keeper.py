"""LeaseKeeper: this coordinator's side of request leases: its own renewed, dead coordinators' requests taken over."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from swarm.coordinator.ownership.request_leases import TakeoverOutcome
from swarm.coordinator.request_record import RequestRecord
from swarm.coordinator.request_store import RequestStore, StoredRequest
from swarm.shared.errors import ErrorCode, SwarmError

log = logging.getLogger(__name__)

# Queued requests looked at per pass for an expired lease (running ones are all looked at).
QUEUED_SCAN_LIMIT = 512


class LeaseKeeper:
    """Works on the dispatcher's table of the requests this coordinator owns (`requests`)."""

    def __init__(
        self,
        store: RequestStore,
        requests: dict[str, RequestRecord],
        admit_stored: Callable[[StoredRequest], RequestRecord],
        wake: Callable[[], None],
    ) -> None:
        self._store = store
        self._requests = requests
        self._admit_stored = admit_stored
        self._wake = wake
        self._next_pass = 0.0  # time.monotonic() of the next renewal, three per lease TTL

    def due(self) -> bool:
        return time.monotonic() >= self._next_pass

    async def keep(self) -> None:
        """Renews this coordinator's leases in one round trip, then takes over the requests of dead ones."""
        self._next_pass = time.monotonic() + self._store.leases.ttl_s / 3
        # One being queued has no lease yet: renewing it would find none and give it up.
        owned = [r.request_id for r in self._requests.values() if not r.stream.done and r.in_redis]
        for request_id in await self._store.leases.renew(owned):
            if (record := self._requests.get(request_id)) is not None:
                self.lose(record)
        for request_id in await self._store.leases.orphans(QUEUED_SCAN_LIMIT):
            if request_id not in self._requests:
                await self.take_over(request_id)

    async def take_over(self, request_id: str) -> RequestRecord | None:
        """The request as this coordinator's, queued (again) after its saved pieces; None if a live peer has it."""
        if (record := self._requests.get(request_id)) is not None:
            return record
        taken = await self._store.leases.take_over(request_id)
        if taken.outcome is not TakeoverOutcome.TAKEN:
            return None
        stored = await self._store.load(request_id)
        if stored is None:
            return None
        if (record := self._requests.get(request_id)) is None:  # not admitted meanwhile
            log.info("requeueing %s after %d pieces, left by a coordinator that stopped", request_id, taken.pieces)
            record = self._admit_stored(stored)
            record.requeued_ms = int(time.time() * 1000)  # it waits for a worker from now
            self._wake()
        return record

    def lose(self, record: RequestRecord) -> None:
        """Another coordinator took the request over (this one failed to renew in time): stop running it here."""
        log.warning("another coordinator took %s over; stopping its run here", record.request_id)
        if record.run is not None and record.run.task is not None and record.run.task is not asyncio.current_task():
            record.run.task.cancel()
        if not record.stream.done:
            record.stream.fail(SwarmError(ErrorCode.UNAVAILABLE, "another coordinator runs this request now; retry"))
        if self._requests.get(record.request_id) is record:
            del self._requests[record.request_id]
