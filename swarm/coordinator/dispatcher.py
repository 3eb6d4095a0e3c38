"""Dispatcher: hands waiting requests to the least-loaded free worker and relays its token stream.

The queue lives in Redis; this process only keeps what a restart can rebuild: which
requests it is running, and the events of each for the clients following it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import grpc
from redis.exceptions import RedisError

from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.liveness import HeartbeatMonitor
from swarm.coordinator.prefix_index import PrefixIndex
from swarm.coordinator.registry import WorkerRegistry
from swarm.coordinator.request_store import RequestStore, StoredResult
from swarm.coordinator.request_stream import RequestStream
from swarm.coordinator.routing import candidates, pick_worker
from swarm.coordinator.worker_calls import WorkerCalls
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import Finished, GenerationRequest, WorkerInfo, WorkerView
from swarm.wire.convert import event_from_wire, run_request_to_wire

log = logging.getLogger(__name__)

# Worker answers that are the request's own fault: retrying elsewhere would fail the same way.
_CLIENT_FAULTS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE}
QUEUE_SCAN_LIMIT = 512


class WorkerFailed(Exception):
    """A worker broke off a request: its process died, it stalled, or it refused the work."""


@dataclass
class _Assignment:
    request: GenerationRequest
    worker: WorkerInfo
    enqueued_ms: int
    last_event: float
    call: Any = None
    stalled: bool = False


class Dispatcher:
    def __init__(
        self,
        config: CoordinatorConfig,
        store: RequestStore,
        registry: WorkerRegistry,
        monitor: HeartbeatMonitor,
        calls: WorkerCalls,
    ) -> None:
        self._config = config
        self._store = store
        self._registry = registry
        self._monitor = monitor
        self._calls = calls
        self._streams: dict[str, RequestStream] = {}
        self._assignments: dict[str, _Assignment] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._requests: dict[str, tuple[GenerationRequest, int]] = {}
        self._inflight: Counter[str] = Counter()
        self._assigned: Counter[str] = Counter()
        self._attempts: Counter[str] = Counter()
        self._requeued_ms: dict[str, int] = {}  # failed over: it waits for a worker from then, not from its start
        self._wake_event = asyncio.Event()
        self._prefixes = PrefixIndex()
        self._started_ms = int(time.time() * 1000)
        self.completed = 0
        self.failed = 0
        self.failovers = 0

    # ------------------------------------------------------------ used by the service

    def wake(self) -> None:
        self._wake_event.set()

    async def workers_changed(self) -> None:
        """A worker joined or left through this coordinator: route with the new set at once."""
        await self._monitor.refresh()
        self.wake()

    def views(self) -> list[WorkerView]:
        """The workers as of the last registry poll, with this coordinator's requests on each."""
        return self._with_inflight(self._monitor.workers)

    async def fresh_views(self) -> list[WorkerView]:
        """The workers as Redis has them now: for operators, who must not see a stale registry."""
        return self._with_inflight(await self._registry.snapshot())

    def _with_inflight(self, views: list[WorkerView]) -> list[WorkerView]:
        return [
            replace(v, inflight=self._inflight[v.info.worker_id], assigned=self._assigned[v.info.worker_id])
            for v in views
        ]

    async def submit(self, request: GenerationRequest) -> RequestStream:
        stream = self._streams[request.request_id] = RequestStream()
        enqueued_ms = await self._store.enqueue(request)
        self._requests[request.request_id] = (request, enqueued_ms)
        self.wake()
        return stream

    async def attach(self, request_id: str) -> RequestStream | StoredResult | None:
        """The stream of a known request (a client retrying), its stored result, or None."""
        stream = self._streams.get(request_id)
        if stream is not None:
            return stream
        stored = await self._store.load(request_id)
        if stored is None:
            return None
        if stored.result is not None:
            return stored.result
        stream = self._streams[request_id] = RequestStream()
        return stream

    async def delivered(self, request_id: str) -> None:
        """A client received the whole result: the request may leave Redis."""
        self._streams.pop(request_id, None)
        await self._store.forget(request_id)

    async def cancel(self, request_id: str) -> None:
        """The client went away: stop the work and free its slot."""
        task = self._tasks.get(request_id)
        if task is not None:
            task.cancel()
        stream = self._streams.pop(request_id, None)
        if stream is not None and not stream.done:
            stream.fail(SwarmError(ErrorCode.CANCELLED, "cancelled by the client"))
        self._forget_locally(request_id)
        await self._store.forget(request_id)

    # ------------------------------------------------------------ background work

    async def recover(self) -> None:
        """Queues again what a previous coordinator was running when it stopped."""
        for request_id in await self._store.running():
            stored = await self._store.load(request_id)
            if stored is None:
                await self._store.forget(request_id)
                continue
            log.info("requeueing %s, left running by a previous coordinator", request_id)
            await self._store.requeue(request_id, stored.enqueued_ms)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_event.wait(), self._config.poll_interval_s)
            self._wake_event.clear()
            try:
                await self._dispatch_waiting()
            except RedisError as exc:  # Redis restarting or overloaded: the queue waits there
                log.warning("cannot read the queue from Redis: %s", exc)
            self._cancel_stalled()

    async def shutdown(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=5.0)

    # ------------------------------------------------------------ internals

    async def _dispatch_waiting(self) -> None:
        views = self.views()
        now_ms = int(time.time() * 1000)
        chosen: list[_Assignment] = []
        for request_id in await self._store.waiting(QUEUE_SCAN_LIMIT):
            known = self._requests.get(request_id)
            if known is None:
                stored = await self._store.load(request_id)
                if stored is None:
                    await self._store.forget(request_id)
                    continue
                known = self._requests[request_id] = (stored.request, stored.enqueued_ms)
            request, enqueued_ms = known
            if not candidates(views, request.model):
                since_ms = max(enqueued_ms, self._started_ms, self._requeued_ms.get(request_id, 0))
                waited_s = (now_ms - since_ms) / 1000
                if waited_s > self._config.no_worker_wait_s:
                    await self._fail(
                        request_id,
                        SwarmError(
                            ErrorCode.UNAVAILABLE,
                            f"no worker serving model {request.model!r} is up (waited {waited_s:.0f} s)",
                        ),
                    )
                continue
            worker = pick_worker(views, request.model, self._prefixes.matches(request.prompt))
            if worker is None:
                continue
            chosen.append(_Assignment(request, worker.info, enqueued_ms, time.monotonic()))
            views = [replace(v, inflight=v.inflight + 1) if v is worker else v for v in views]
        if chosen:
            await self._start(chosen)

    async def _start(self, chosen: list[_Assignment]) -> None:
        """Claims the chosen requests in one Redis round trip and starts those this coordinator won."""
        claimed = await self._store.claim_many([(a.request.request_id, a.worker.worker_id) for a in chosen])
        for assignment, won in zip(chosen, claimed, strict=True):
            if not won:  # another coordinator took it first
                continue
            request_id, worker_id = assignment.request.request_id, assignment.worker.worker_id
            self._inflight[worker_id] += 1
            self._assigned[worker_id] += 1
            self._assignments[request_id] = assignment
            self._tasks[request_id] = asyncio.create_task(self._relay(assignment), name=request_id)

    def _cancel_stalled(self) -> None:
        """Gives up on calls to workers that went silent or whose heartbeat expired; their requests fail over."""
        now = time.monotonic()
        down = {view.info.worker_id for view in self._monitor.workers if not view.up}
        for assignment in self._assignments.values():
            if assignment.call is None or assignment.stalled:
                continue
            silent_s = now - assignment.last_event
            if silent_s > self._config.worker_idle_timeout_s or assignment.worker.worker_id in down:
                log.warning(
                    "worker %s is down or sent nothing for %.0f s on %s; giving up on it",
                    assignment.worker.worker_id,
                    silent_s,
                    assignment.request.request_id,
                )
                assignment.stalled = True
                assignment.call.cancel()

    async def _relay(self, assignment: _Assignment) -> None:
        request = assignment.request
        request_id = request.request_id
        stream = self._streams.setdefault(request_id, RequestStream())
        self._attempts[request_id] += 1
        try:
            await self._stream_from_worker(assignment, stream)
        except WorkerFailed as exc:
            await self._worker_failed(assignment, stream, exc)
        except SwarmError as exc:
            await self._fail(request_id, exc)
        else:
            self.completed += 1
            text = request.prompt + "".join(p.text for p in stream.pieces)
            self._prefixes.record(assignment.worker.worker_id, assignment.worker.slots, text)
            self._forget_locally(request_id)
            if stream.followers == 0:  # nobody is waiting now: keep the result until asked
                self._streams.pop(request_id, None)
                await self._store.complete(request_id, StoredResult(stream.pieces, stream.final))
        finally:
            self._inflight[assignment.worker.worker_id] -= 1
            self._assignments.pop(request_id, None)
            self._tasks.pop(request_id, None)
            self.wake()

    async def _stream_from_worker(self, assignment: _Assignment, stream: RequestStream) -> None:
        call = assignment.call = self._calls.run(assignment.worker.address, run_request_to_wire(assignment.request))
        try:
            async for message in call:
                assignment.last_event = time.monotonic()
                event = event_from_wire(message)
                stream.publish(event)
                if isinstance(event, Finished):
                    return
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _CLIENT_FAULTS:
                raise SwarmError(ErrorCode(exc.code().name), exc.details() or "rejected by the worker") from exc
            raise WorkerFailed(f"{exc.code().name}: {exc.details()}") from exc
        except asyncio.CancelledError:
            if assignment.stalled:  # cancelled by _cancel_stalled, not by the client
                raise WorkerFailed("stalled") from None
            raise
        raise WorkerFailed("ended the stream without finishing")

    async def _worker_failed(self, assignment: _Assignment, stream: RequestStream, exc: WorkerFailed) -> None:
        """Resumes the request on another worker: it prefills the prompt and every token the client got."""
        worker, request = assignment.worker, assignment.request
        request_id = request.request_id
        await self._registry.mark_down(worker.worker_id)
        await self._monitor.refresh()
        self._prefixes.forget(worker.worker_id)
        delivered = tuple(token for piece in stream.pieces for token in piece.token_ids)
        if len(delivered) > len(request.resume_tokens):
            self._attempts[request_id] = 0  # it made progress: only attempts in a row without any count
        if self._attempts[request_id] < self._config.max_attempts:
            log.warning(
                "worker %s failed on %s after %d tokens (%s); resuming it elsewhere",
                worker.worker_id,
                request_id,
                len(delivered),
                exc,
            )
            self.failovers += 1
            self._requests[request_id] = (replace(request, resume_tokens=delivered), assignment.enqueued_ms)
            self._requeued_ms[request_id] = int(time.time() * 1000)
            await self._store.requeue(request_id, assignment.enqueued_ms)
            return
        await self._fail(
            request_id,
            SwarmError(
                ErrorCode.UNAVAILABLE,
                f"{self._config.max_attempts} workers in a row failed on this request (last: {worker.worker_id}, "
                f"{exc}); retry it later",
            ),
        )

    def _forget_locally(self, request_id: str) -> None:
        """Drops what this process tracked of a request that ended here (its Redis entry is the caller's)."""
        self._requests.pop(request_id, None)
        self._attempts.pop(request_id, None)
        self._requeued_ms.pop(request_id, None)

    async def _fail(self, request_id: str, error: SwarmError) -> None:
        self.failed += 1
        stream = self._streams.pop(request_id, None)
        if stream is not None:
            stream.fail(error)
        self._forget_locally(request_id)
        await self._store.forget(request_id)
