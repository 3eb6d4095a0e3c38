"""RequestLedger: what the dispatcher writes to Redis about its requests, now or, with Redis away, once it is back.

A running request waits for Redis (restarting, failing over) up to its patience; an ending one
never waits: what Redis could not hear (a request to forget, a run to queue again) is kept here
and told at the next `settle`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from swarm.coordinator.ownership.lease_keeper import LeaseKeeper
from swarm.coordinator.redis_patience import patiently
from swarm.coordinator.request_record import RequestRecord, WorkerRun
from swarm.coordinator.request_store import RequestStore, StoredResult
from swarm.shared.types import Finished, TextPiece
from swarm.shared.usage_types import finished_tokens

log = logging.getLogger(__name__)
T = TypeVar("T")


class RequestLedger:
    def __init__(self, store: RequestStore, leases: LeaseKeeper, patience_s: float) -> None:
        self._store = store
        self._leases = leases
        self._patience_s = patience_s
        # Ended while Redis was away: forgotten there, or queued again to resume, once it is back.
        self.unforgotten: set[str] = set()
        self.unrequeued: set[str] = set()

    async def patiently(self, action: Callable[[], Awaitable[T]]) -> T:
        return await patiently(action, self._patience_s)

    async def save_piece(self, request_id: str, index: int, piece: TextPiece) -> None:
        await self.patiently(lambda: self._store.save_piece(request_id, index, piece))

    async def count_usage(self, record: RequestRecord, run: WorkerRun, finished: Finished) -> None:
        """Accounts the request once its worker finished it, before its end reaches any client."""
        request = record.request
        tokens = finished_tokens(record.stream.pieces, finished)
        await self.patiently(
            lambda: self._store.usage.count(
                request.request_id, request.tenant, request.model, run.worker.worker_id, tokens
            )
        )

    async def count_cancelled(self, record: RequestRecord) -> None:
        """Accounts the tokens a client got before it left (none: nothing to account)."""
        tokens = finished_tokens(record.stream.pieces, None)
        if not tokens.completion:
            return
        request = record.request
        worker_id = record.run.worker.worker_id if record.run is not None else ""
        try:
            await self._store.usage.count(request.request_id, request.tenant, request.model, worker_id, tokens)
        except RedisError as exc:
            log.warning("cannot account the cancelled %s in Redis (%s)", request.request_id, exc)

    async def forget(self, request_id: str) -> None:
        """Removes an ended request from Redis, now or, if Redis is away, once it is back."""
        try:
            await self._store.forget(request_id)
        except RedisError as exc:
            log.warning("cannot forget %s in Redis yet (%s); trying again when it answers", request_id, exc)
            self.unforgotten.add(request_id)

    async def delivered(self, record: RequestRecord) -> None:
        """A client here has the whole result: kept briefly in Redis, or for a client following elsewhere."""
        try:
            await self._store.delivered(record.request_id, StoredResult(record.stream.pieces, record.stream.final))
        except RedisError as exc:
            log.warning("cannot forget %s in Redis yet (%s); trying again when it answers", record.request_id, exc)
            self.unforgotten.add(record.request_id)

    async def delivered_stored(self, request_id: str) -> None:
        """A client here has read a result Redis kept."""
        try:
            await self._store.delivered_stored(request_id)
        except RedisError as exc:  # it expires with the result TTL instead
            log.warning("cannot shorten the life of %s's result in Redis (%s)", request_id, exc)

    async def keep_failed(self, request_id: str) -> None:
        """No worker could take it: the client's retry resumes it after the tokens it has, never from the start."""
        try:
            await self._store.keep_failed(request_id)
        except RedisError as exc:
            log.warning("cannot keep %s in Redis for a retry (%s); forgetting it", request_id, exc)
            self.unforgotten.add(request_id)

    async def settle(self) -> None:
        """Tells Redis what happened while it was away."""
        for request_id in list(self.unforgotten):
            await self._store.forget(request_id)
            self.unforgotten.discard(request_id)
        for request_id in list(self.unrequeued):  # its run here ended with Redis away: run it again
            await self._leases.take_over(request_id)
            self.unrequeued.discard(request_id)
