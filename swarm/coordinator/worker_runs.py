"""WorkerRuns: the dispatcher's runs of its requests on workers, and what each run's end means for its request.

A run ends done (its result kept for a client that is not waiting), with its worker failed (resumed on
another, after the tokens its clients have), with its worker full (queued again), with Redis away (queued
again once it is back), with its lease lost to another coordinator (now its owner), or with the request
itself failed (ended with an error for every client).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from redis.exceptions import RedisError

from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.liveness import HeartbeatMonitor
from swarm.coordinator.ownership.lease_keeper import LeaseKeeper
from swarm.coordinator.prefix_index import PrefixIndex
from swarm.coordinator.registry import WorkerRegistry
from swarm.coordinator.relay.piece_journal import PieceRefused
from swarm.coordinator.relay.worker_calls import WorkerCalls
from swarm.coordinator.relay.worker_relay import WorkerBusy, WorkerFailed, relay_worker_stream
from swarm.coordinator.request_ledger import RequestLedger
from swarm.coordinator.request_record import RequestRecord, WorkerRun
from swarm.coordinator.request_store import RequestStore, StoredResult
from swarm.shared import tracing
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import WorkerView
from swarm.wire.convert import run_request_to_wire

log = logging.getLogger(__name__)


class WorkerRuns:
    """Works on the dispatcher's records: `drop` removes one from its table, `wake` has it dispatch again."""

    def __init__(
        self,
        config: CoordinatorConfig,
        store: RequestStore,
        registry: WorkerRegistry,
        monitor: HeartbeatMonitor,
        calls: WorkerCalls,
        ledger: RequestLedger,
        leases: LeaseKeeper,
        prefixes: PrefixIndex,
        drop: Callable[[RequestRecord], None],
        wake: Callable[[], None],
    ) -> None:
        self._config = config
        self._store = store
        self._registry = registry
        self._monitor = monitor
        self._calls = calls
        self._ledger = ledger
        self._leases = leases
        self._prefixes = prefixes
        self._drop = drop
        self._wake = wake
        self.inflight: Counter[str] = Counter()  # worker id -> runs on it now
        self.assigned: Counter[str] = Counter()  # worker id -> runs ever started on it
        self.full_until: dict[str, float] = {}  # worker id -> time.monotonic() until which it is routed nothing
        self.completed = 0  # requests a run here finished
        self.failed = 0  # requests ended with an error
        self.failovers = 0  # runs resumed on another worker after theirs failed

    def start(self, record: RequestRecord, worker: WorkerView) -> None:
        worker_id = worker.info.worker_id
        self.inflight[worker_id] += 1
        self.assigned[worker_id] += 1
        run = record.run = WorkerRun(worker.info, time.monotonic())
        record.attempts += 1
        tracing.past_span("coordinator.queued", record.request.traceparent, record.admitted_ns)
        relay = tracing.in_span(
            "coordinator.dispatch", record.request.traceparent, self._relay(record, run), worker=worker_id
        )
        run.task = asyncio.create_task(relay, name=record.request_id)
        # Counted free again once the task is done, not in the relay's own `finally`: a task cancelled before
        # its first step (its client left between the dispatch and that step, as a stopped flood's hundreds
        # do) never runs its coroutine at all, and its slot stayed counted busy for good.
        run.task.add_done_callback(lambda _: self._run_ended(record, run))

    def _run_ended(self, record: RequestRecord, run: WorkerRun) -> None:
        self.inflight[run.worker.worker_id] -= 1
        if record.run is run:
            record.run = None
        self._wake()

    async def _relay(self, record: RequestRecord, run: WorkerRun) -> None:
        """Streams the run's events to the record; whatever happens, the request ends or waits again."""
        try:
            try:
                run.call = self._calls.run(run.worker.address, run_request_to_wire(record.request))
                save_piece = partial(self._ledger.save_piece, record.request_id)
                await relay_worker_stream(record, run, save_piece, partial(self._ledger.count_usage, record, run))
            except WorkerFailed as exc:
                await self._worker_failed(record, run, exc)
            except PieceRefused:  # its lease lapsed (Redis was away) and another coordinator took it over
                self._leases.lose(record)
            except WorkerBusy:
                self.full_until[run.worker.worker_id] = time.monotonic() + max(self._config.poll_interval_s, 0.1)
                record.attempts -= 1  # refused before any work: no attempt at it
                await self._ledger.patiently(lambda: self._store.requeue(record.request_id, record.queue_score))
            else:
                await self._completed(record, run)
        except SwarmError as exc:
            await self.end(record, exc)
        except (RedisError, ConnectionError) as exc:
            # Queued again once Redis is back, to resume after the pieces sent; the client's retry follows it.
            log.warning("Redis failed while running %s: %s", record.request_id, exc)
            if not record.stream.done:  # else its result could not be kept: the rerun resumes after its pieces
                self.failed += 1
                record.stream.fail(SwarmError(ErrorCode.UNAVAILABLE, f"Redis is unavailable ({exc}); retry"))
            self._drop(record)
            self._ledger.unrequeued.add(record.request_id)
        except Exception as exc:
            log.exception("relaying %s failed", record.request_id)
            await self.end(record, SwarmError(ErrorCode.INTERNAL, f"the coordinator failed on this request: {exc}"))

    async def _completed(self, record: RequestRecord, run: WorkerRun) -> None:
        self.completed += 1
        text = record.request.prompt + "".join(p.text for p in record.stream.pieces)
        self._prefixes.record(run.worker.worker_id, run.worker.slots, text)
        if record.stream.followers == 0:  # nobody is waiting now: keep the result until asked
            result = StoredResult(record.stream.pieces, record.stream.final)
            await self._ledger.patiently(lambda: self._store.complete(record.request_id, result))
            self._drop(record)

    async def _worker_failed(self, record: RequestRecord, run: WorkerRun, exc: WorkerFailed) -> None:
        """Resumes the request on another worker: it prefills the prompt and every token the client got."""
        worker_id = run.worker.worker_id
        if run.stalled:  # its other runs on the same stream are as stuck as this one
            self._calls.reset(run.worker.address)
        await self._ledger.patiently(lambda: self._registry.mark_down(worker_id))
        await self._monitor.refresh()
        self._prefixes.forget(worker_id)
        delivered = record.delivered_tokens()
        if len(delivered) > len(record.request.resume_tokens):
            record.attempts = 0  # it made progress: only attempts in a row without any count
        if record.attempts >= self._config.max_attempts:
            raise SwarmError(
                ErrorCode.UNAVAILABLE,
                f"{self._config.max_attempts} workers in a row failed on this request (last: {worker_id}, "
                f"{exc}); retry it later",
            )
        log.warning(
            "worker %s failed on %s after %d tokens (%s); resuming it elsewhere",
            worker_id,
            record.request_id,
            len(delivered),
            exc,
        )
        self.failovers += 1
        record.request = replace(record.request, resume_tokens=delivered)
        record.requeued_ms = int(time.time() * 1000)
        await self._ledger.patiently(lambda: self._store.requeue(record.request_id, record.queue_score))

    async def end(self, record: RequestRecord, error: SwarmError) -> None:
        """Fails the request for every follower and removes it here; in Redis, kept for a retry if it may succeed."""
        self.failed += 1
        if not record.stream.done:
            record.stream.fail(error)
        self._drop(record)
        if error.code is ErrorCode.UNAVAILABLE:
            await self._ledger.keep_failed(record.request_id)
        else:
            await self._ledger.forget(record.request_id)
