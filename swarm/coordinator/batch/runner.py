"""BatchRunner: the coordinator's background loop that runs batch lines through the swarm, each exactly once.

Work items come from a Redis stream read through a consumer group, so several coordinators
share the work and a dead one's items are claimed by the others. A line runs as an ordinary
request whose id is derived from its job and line: a rerun after a crash attaches to the
request the swarm still holds instead of running it again, and its result is recorded only
if the line has none yet (HSETNX) before the work item is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import replace

from redis.exceptions import RedisError

from swarm.coordinator.batch.store import BatchStore, LineWork, WorkItem
from swarm.coordinator.batch.submitter import Submitter
from swarm.coordinator.redis_patience import patiently
from swarm.coordinator.service import InferenceService
from swarm.coordinator.tenancy.key_record import record_refusal
from swarm.coordinator.tenancy.key_store import KeyStore
from swarm.shared.backoff import backoff_delays
from swarm.shared.batch_types import BatchResult
from swarm.shared.cancellation import stop_if_cancelled
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import Finished, GenerationEvent, RawRequest, TextPiece, WorkerView
from swarm.shared.validation import BATCH_REQUEST_ID_PREFIX

log = logging.getLogger(__name__)

# The line's own fault: running it again would fail the same way, so the error is its result.
# NOT_FOUND is a model no worker has served lately (a typo), not one whose workers are down;
# UNAUTHENTICATED: the job's key was revoked or expired while the line ran (tenancy.key_watch).
_LINE_FAULTS = {
    ErrorCode.INVALID_ARGUMENT,
    ErrorCode.FAILED_PRECONDITION,
    ErrorCode.NOT_FOUND,
    ErrorCode.UNAUTHENTICATED,
}
MAX_LINE_ATTEMPTS = 5  # runs of one line that failed for the swarm's reasons before its error is kept
READ_BLOCK_MS = 500
STALL_FACTOR = 3  # times the reclaim time
FORGET_CONSUMER_FACTOR = 10  # times the reclaim time: a runner idle this long, with nothing pending, is gone
# How long a line's result waits for Redis to come back (a restart, a Sentinel failover) before
# the line is left to run again.
RECORD_PATIENCE_S = 30.0


def request_slots(views: list[WorkerView]) -> int:
    """Sequences the workers up now can run at once: how many batch lines to keep in the swarm."""
    return sum(v.info.slots for v in views if v.up and v.info.takes_requests)


def batch_request_id(job_id: str, index: int) -> str:
    return f"{BATCH_REQUEST_ID_PREFIX}{job_id}-{index}"


class BatchRunner:
    def __init__(
        self,
        store: BatchStore,
        service: InferenceService,
        capacity: Callable[[], int],
        reclaim_after_s: float,
        poll_interval_s: float,
        keys: KeyStore | None = None,
    ) -> None:
        """`capacity` says how many lines may run at once: the slots of the workers up now; `keys` are
        the created keys, whose jobs' lines stop running once their key is revoked or expires."""
        self._store = store
        self._keys = keys
        self._service = service
        self._capacity = capacity
        self._reclaim_after_s = reclaim_after_s
        self._poll_interval_s = poll_interval_s
        # A line that waited this long without a single event is presumed lost (Redis dropped
        # its request mid-dispatch) and is submitted again; a queued one loses only its place.
        self._stall_timeout_s = STALL_FACTOR * reclaim_after_s
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._running: dict[str, asyncio.Task[None]] = {}  # by stream entry id
        self._room = asyncio.Event()
        self._next_upkeep = 0.0

    async def run(self) -> None:
        delays = backoff_delays()
        while True:
            try:
                await self._store.ensure_group()
                while True:
                    await self._step()
                    delays = backoff_delays()
                    stop_if_cancelled()
            except RedisError as exc:  # Redis restarting (the work waits there), or back without the stream (NOGROUP)
                log.warning("cannot read batch work from Redis: %s", exc)
            stop_if_cancelled()
            await asyncio.sleep(next(delays))

    async def shutdown(self) -> None:
        """Stops the lines running here; their items stay pending and another runner claims them."""
        for task in list(self._running.values()):
            task.cancel()
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=5.0)

    async def _step(self) -> None:
        room = max(0, self._capacity() - len(self._running))
        if time.monotonic() >= self._next_upkeep:
            self._next_upkeep = time.monotonic() + self._reclaim_after_s / 3
            await self._store.keep_claimed(self._consumer, list(self._running))
            await self._store.forget_consumers(int(FORGET_CONSUMER_FACTOR * self._reclaim_after_s * 1000))
            if room:
                stale = await self._store.claim_stale(self._consumer, int(self._reclaim_after_s * 1000), room)
                self._start([item for item in stale if item.entry_id not in self._running])
                return
        if not room:
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), self._poll_interval_s)
            return
        self._start(await self._store.next_items(self._consumer, room, READ_BLOCK_MS))

    def _start(self, items: list[WorkItem]) -> None:
        for item in items:
            self._running[item.entry_id] = asyncio.create_task(self._run_item(item), name=item.entry_id)

    async def _run_item(self, item: WorkItem) -> None:
        try:
            work = await self._store.work_for(item)
            if work is not None:
                refusal = await self._key_refusal(work.submitter)
                if refusal is not None:
                    result = BatchResult(item.index + 1, work.line.custom_id, error=str(refusal))
                else:
                    result = await self._run_line(item, work)
                now_ms = int(time.time() * 1000)
                await patiently(lambda: self._store.record(item.job_id, result, now_ms), RECORD_PATIENCE_S)
            await patiently(lambda: self._store.finish_item(item), RECORD_PATIENCE_S)
        except RedisError as exc:  # the item stays pending: this runner or another takes it again
            log.warning("batch line %s of %s: Redis failed (%s); it will run again", item.index, item.job_id, exc)
        finally:
            self._running.pop(item.entry_id, None)
            self._room.set()

    async def _key_refusal(self, submitter: Submitter) -> SwarmError | None:
        """Why the job's key may not run its lines any more (None if it may): it was revoked or has expired."""
        if self._keys is None or not submitter.key_digest:
            return None
        record = await self._keys.lookup(submitter.key_digest)
        why = record_refusal(submitter.tenant, record, int(time.time() * 1000))
        return SwarmError(ErrorCode.UNAUTHENTICATED, why) if why else None

    async def _run_line(self, item: WorkItem, work: LineWork) -> BatchResult:
        request = replace(
            work.line.request,
            model=work.line.request.model or work.job_model,
            request_id=batch_request_id(item.job_id, item.index),
        )
        line, custom_id = item.index + 1, work.line.custom_id
        delays = backoff_delays(first_s=1.0, cap_s=30.0)
        failures = 0
        while True:
            events: list[GenerationEvent] = []
            try:
                await self._collect(request, work.submitter, events)
            except SwarmError as exc:
                failures += 1
                if exc.code in _LINE_FAULTS or failures >= MAX_LINE_ATTEMPTS:
                    return BatchResult(line, custom_id, error=str(exc))
                log.info("batch line %d of %s failed (%s); trying again", line, item.job_id, exc)
            except _Stalled:
                log.warning(
                    "batch line %d of %s made no progress for %.0f s; submitting it again",
                    line,
                    item.job_id,
                    self._stall_timeout_s,
                )
            except RedisError:
                if not _finished(events):
                    raise
                # The whole result arrived before Redis failed to forget the request: keep it.
            if _finished(events):
                return _line_result(line, custom_id, events)
            await asyncio.sleep(next(delays))

    async def _collect(self, request: RawRequest, submitter: Submitter, events: list[GenerationEvent]) -> None:
        """Runs the request as the submitter's batch work, appending its events; raises _Stalled when none
        comes for the stall timeout."""
        access = submitter.line_access()
        # Every way out of this loop ends the generator: it is exhausted, raised, or was cancelled by wait_for.
        stream = self._service.generate(request, whole_answer=True, access=access)
        while True:
            try:
                events.append(await asyncio.wait_for(anext(stream), self._stall_timeout_s))
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _Stalled from None


class _Stalled(Exception):
    """A line's request produced nothing for the stall timeout, e.g. Redis lost it while restarting."""


def _finished(events: list[GenerationEvent]) -> bool:
    return any(isinstance(e, Finished) for e in events)


def _line_result(line: int, custom_id: str, events: list[GenerationEvent]) -> BatchResult:
    finished = next(e for e in events if isinstance(e, Finished))
    return BatchResult(
        line,
        custom_id,
        text="".join(e.text for e in events if isinstance(e, TextPiece)),
        finish_reason=finished.reason,
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
    )
