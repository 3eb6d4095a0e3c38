"""Dispatcher: owns each request's life here, from admission through its runs on workers to its end.

The queue lives in Redis, with every piece sent to a client; this process keeps one
RequestRecord per request it owns (`_requests`: accepted here or taken over, each held by a
lease in Redis, see request_leases), created in `_admit`, run on workers by WorkerRuns and
dropped in `_drop`, and nothing a restart could not rebuild from Redis. Requests another live
coordinator owns are followed from Redis (peer_follow), never run here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

from redis.exceptions import RedisError

from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.dispatch_plan import NO_LOADS, WaitingRequest, plan_dispatch
from swarm.coordinator.fairness.slot_share import ACTIVE_TENANT_S, SlotShare
from swarm.coordinator.liveness import HeartbeatMonitor
from swarm.coordinator.ownership.lease_keeper import LeaseKeeper
from swarm.coordinator.ownership.peer_follow import follow_peer
from swarm.coordinator.planning.queued_demand import QueuedDemand
from swarm.coordinator.prefix_index import PrefixIndex
from swarm.coordinator.registry import WorkerRegistry
from swarm.coordinator.relay.worker_calls import WorkerCalls
from swarm.coordinator.relay.worker_relay import give_up_on_stalled
from swarm.coordinator.request_identity import check_same_request
from swarm.coordinator.request_ledger import RequestLedger
from swarm.coordinator.request_record import RequestRecord
from swarm.coordinator.request_store import RequestStore, StoredRequest, StoredResult
from swarm.coordinator.worker_runs import WorkerRuns
from swarm.shared.cancellation import stop_if_cancelled
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.pieces import check_resume_point, coalesce
from swarm.shared.types import Finished, GenerationEvent, GenerationRequest, WorkerView

log = logging.getLogger(__name__)

QUEUE_SCAN_LIMIT = 512
ACTIVE_TENANTS_READ_S = 1.0  # how often the tenants active lately are counted in Redis
# How long a running request waits for Redis (restarting, failing over) before its clients get UNAVAILABLE.
REDIS_PATIENCE_S = 30.0


def queue_full(waiting: int) -> SwarmError:
    """The refusal of a request that found `waiting` requests queued, the coordinator's bound."""
    return SwarmError(
        ErrorCode.RESOURCE_EXHAUSTED,
        f"the swarm is full: {waiting} requests are waiting for a worker; retry in a few seconds",
    )


class Dispatcher:
    def __init__(
        self,
        config: CoordinatorConfig,
        store: RequestStore,
        registry: WorkerRegistry,
        monitor: HeartbeatMonitor,
        calls: WorkerCalls,
        redis_patience_s: float = REDIS_PATIENCE_S,
        loads: QueuedDemand | None = None,  # the planned models' demand: None when the coordinator plans none
    ) -> None:
        self._config = config
        self._loads = loads
        self._store = store
        self._registry = registry
        self._monitor = monitor
        self._calls = calls
        self._requests: dict[str, RequestRecord] = {}
        self._leases = LeaseKeeper(store, self._requests, self._admit_stored, self.wake)
        self._ledger = RequestLedger(store, self._leases, redis_patience_s)
        self._active_tenants: set[str] = set()  # that queued a request lately, read from Redis (fairness.slot_share)
        self._tenants_read_at = -ACTIVE_TENANTS_READ_S
        self._wake_event = asyncio.Event()
        self._prefixes = PrefixIndex()
        self._runs = WorkerRuns(
            config, store, registry, monitor, calls, self._ledger, self._leases, self._prefixes, self._drop, self.wake
        )
        self._stopping = False  # clients leaving now are cut off by this process's shutdown, not leaving
        self.claimed_at_admission = 0  # requests that went to a worker in their enqueue's round trip
        self._started_ms = int(time.time() * 1000)

    # ------------------------------------------------------------ workers, for the service and metrics

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
            replace(v, inflight=self._runs.inflight[v.info.worker_id], assigned=self._runs.assigned[v.info.worker_id])
            for v in views
        ]

    # The counts for metrics, kept where the runs end.
    @property
    def completed(self) -> int:
        return self._runs.completed

    @property
    def failed(self) -> int:
        return self._runs.failed

    @property
    def failovers(self) -> int:
        return self._runs.failovers

    # ------------------------------------------------------------ clients

    async def submit(
        self, request: GenerationRequest, *, max_queue: int = 0, attach_known: bool = False
    ) -> AsyncIterator[GenerationEvent]:
        """Queues a new request and follows it; a second submit of the same request follows the first.

        max_queue: RESOURCE_EXHAUSTED when that many requests wait already (0: no bound).
        attach_known: the client named the id and it was not looked up: one Redis knows is followed
        instead (`attach`), in the same round trip as the queueing.
        """
        record = self._requests.get(request.request_id)
        if record is not None:
            check_same_request(record.request, request.fingerprint)
            return self._follow(record, 0)
        if attach_known and await self._forget_unforgotten(request.request_id):
            attach_known = False  # its retry starts anew
        record = self._admit(request, enqueued_ms=int(time.time() * 1000))
        record.in_redis = False
        worker = self._free_worker_now(record)
        try:
            admitted = await self._store.admit(
                request,
                if_new=attach_known,
                max_queue=max_queue,
                claim_for=worker.info.worker_id if worker is not None else "",
            )
        except BaseException:
            self._drop(record)
            record.stream.fail(SwarmError(ErrorCode.UNAVAILABLE, "the request could not be queued; retry it"))
            raise
        if admitted.known or admitted.full_at:
            self._drop(record)
            if admitted.full_at:
                raise queue_full(admitted.full_at)
            events = await self.attach(request.request_id, request.fingerprint, 0)
            # None: it ended and went between the two round trips; queue it anew.
            return events if events is not None else await self.submit(request, max_queue=max_queue)
        record.enqueued_ms, record.queue_score, record.in_redis = admitted.enqueued_ms, admitted.score, True
        if admitted.claimed and worker is not None:
            self.claimed_at_admission += 1
            self._runs.start(record, worker)
        else:
            self.wake()
        return self._follow(record, 0)

    def _free_worker_now(self, record: RequestRecord) -> WorkerView | None:
        """The worker the dispatcher's next pass would give this request, if nothing else here waits for one.

        The plan is `_dispatch_waiting`'s for one request, with the tenants last read from Redis (at most
        ACTIVE_TENANTS_READ_S old); the store claims it only if it is first in the whole queue.
        """
        if self._loads is not None:  # a planned model may have to be loaded first: the pass decides
            return None
        views = self._routing_views()
        if not any(v.free_slots for v in views):
            return None
        if any(r.run is None and not r.stream.done and r is not record for r in self._requests.values()):
            return None
        waiting = WaitingRequest(
            record.request_id, record.request.model, record.request.prompt, record.enqueued_ms, record.request.tenant
        )
        now_ms, wait_s = int(time.time() * 1000), self._config.no_worker_wait_s
        plan = plan_dispatch([waiting], views, self._prefixes.matches, now_ms, wait_s, self._share())
        return plan.assignments[0].worker if plan.assignments else None

    async def attach(
        self, request_id: str, fingerprint: str, skip_tokens: int
    ) -> AsyncIterator[GenerationEvent] | None:
        """Follows the request this swarm has under the id (a client retrying), after its first skip_tokens.

        None if the id is unknown; ALREADY_EXISTS if it names another request (request_identity),
        OUT_OF_RANGE if skip_tokens is more than the request has produced.
        """
        record = self._requests.get(request_id)
        if record is None:
            await self._forget_unforgotten(request_id)
            stored = await self._store.load(request_id)
            if stored is None:
                return None
            check_same_request(stored.request, fingerprint)
            if stored.result is not None:
                check_resume_point(skip_tokens, sum(len(p.token_ids) for p in stored.result.pieces))
                return self._replay(request_id, stored.result, skip_tokens)
            check_resume_point(skip_tokens, sum(len(p.token_ids) for p in stored.sent))
            # Unless a live peer owns it: its owner died, its relay here ended with Redis away, or no worker
            # could take it. Run it again here, after the pieces saved.
            taken = await self._leases.take_over(request_id)
            self._ledger.unrequeued.discard(request_id)
            if taken is None:
                return follow_peer(self._store, request_id, skip_tokens, self._adopt)
            record = taken
        check_same_request(record.request, fingerprint)
        check_resume_point(skip_tokens, len(record.delivered_tokens()))
        return self._follow(record, skip_tokens)

    async def _forget_unforgotten(self, request_id: str) -> bool:
        """Forgets in Redis a request that ended here while Redis was away (a retry of it starts anew); whether
        it was one."""
        if request_id not in self._ledger.unforgotten:
            return False
        await self._store.forget(request_id)
        self._ledger.unforgotten.discard(request_id)
        return True

    async def _follow(self, record: RequestRecord, skip_tokens: int) -> AsyncIterator[GenerationEvent]:
        """One client's copy of the events; the request leaves once one client has it all, or all left."""
        events = record.stream.follow(skip_tokens)
        finished = refused = False
        try:
            async for event in events:
                yield event
                finished = finished or isinstance(event, Finished)
        except SwarmError:
            refused = True  # the request failed (and ended), or this client's resume point was refused
            raise
        finally:
            await events.aclose()  # counts this follower out before deciding
            if finished:
                self._drop(record)
                await self._ledger.delivered(record)
            elif not refused:
                await asyncio.shield(self._cancel(record))

    async def _replay(self, request_id: str, result: StoredResult, skip_tokens: int) -> AsyncIterator[GenerationEvent]:
        for event in coalesce([*result.pieces, result.finished], skip_tokens):
            yield event
        await self._ledger.delivered_stored(request_id)

    async def _cancel(self, record: RequestRecord) -> None:
        """A client went away: unless another follows, stop the work and free its slot."""
        if self._stopping or record.stream.followers > 0 or self._requests.get(record.request_id) is not record:
            return
        with contextlib.suppress(RedisError):
            if await self._store.watched(record.request_id):
                return  # a client follows it through another coordinator: it runs on, its result kept
        if self._requests.get(record.request_id) is not record or record.stream.followers > 0:
            return
        if record.run is not None and record.run.task is not None:
            record.run.task.cancel()
        if not record.stream.done:
            record.stream.fail(SwarmError(ErrorCode.CANCELLED, "cancelled by the client"))
        self._drop(record)
        await self._ledger.count_cancelled(record)
        await self._ledger.forget(record.request_id)

    def requests_by_tenant(self) -> dict[str, list[str]]:
        """The ids of the requests this coordinator owns (queued or running), by tenant: for the key watch."""
        by_tenant: dict[str, list[str]] = {}
        for record in self._requests.values():
            by_tenant.setdefault(record.request.tenant, []).append(record.request_id)
        return by_tenant

    async def end_requests(self, request_ids: list[str], error: SwarmError) -> int:
        """Ends those of these requests owned here for every client (their key was revoked): runs cancelled,
        worker slots freed, the tokens sent accounted. How many it ended."""
        ended = 0
        for request_id in request_ids:
            record = self._requests.get(request_id)
            if record is None or record.stream.done:
                continue
            if record.run is not None and record.run.task is not None:
                record.run.task.cancel()
            await self._ledger.count_cancelled(record)
            await self._runs.end(record, error)
            ended += 1
        return ended

    # ------------------------------------------------------------ background work

    async def recover(self) -> None:
        """Takes over what coordinators that stopped left queued or running; each resumes after the pieces sent.

        Only requests whose lease expired: a live peer's stay its own. Later ones are found by `run`.
        """
        await self._leases.keep()

    async def _adopt(self, request_id: str, lapsed: bool, skip_tokens: int) -> AsyncIterator[GenerationEvent] | None:
        """For peer_follow: the request's events here once this coordinator has it, taking it over if it lapsed."""
        record = self._requests.get(request_id)
        if record is None and lapsed:
            record = await self._leases.take_over(request_id)
        return None if record is None else self._follow(record, skip_tokens)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_event.wait(), self._config.poll_interval_s)
            self._wake_event.clear()
            try:
                if self._leases.due():
                    await self._leases.keep()
                await self._ledger.settle()
                await self._dispatch_waiting()
            except RedisError as exc:  # Redis restarting or overloaded: the queue waits there
                log.warning("cannot read the queue from Redis: %s", exc)
            down = {view.info.worker_id for view in self._monitor.workers if not view.up}
            give_up_on_stalled(self._requests.values(), down, self._config.worker_idle_timeout_s)
            stop_if_cancelled()

    def begin_shutdown(self) -> None:
        """From now on a client cut off keeps its request in Redis, for its retry through another coordinator."""
        self._stopping = True

    async def shutdown(self) -> None:
        """Stops every relay; their requests stay in Redis, their leases given up for another coordinator."""
        tasks = [r.run.task for r in self._requests.values() if r.run is not None and r.run.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        with contextlib.suppress(RedisError, ConnectionError):
            await self._store.leases.release(list(self._requests))
        await self._store.close()

    # ------------------------------------------------------------ the table

    def _admit(self, request: GenerationRequest, enqueued_ms: int) -> RequestRecord:
        record = self._requests[request.request_id] = RequestRecord(request, enqueued_ms)
        return record

    def _admit_stored(self, stored: StoredRequest) -> RequestRecord:
        """A request known only to Redis: its stream starts with the pieces already sent, its run after them."""
        resume = tuple(token for piece in stored.sent for token in piece.token_ids)
        record = self._admit(replace(stored.request, resume_tokens=resume), stored.enqueued_ms)
        record.queue_score = stored.score
        for piece in stored.sent:
            record.stream.publish(piece)
        return record

    def _drop(self, record: RequestRecord) -> None:
        if self._requests.get(record.request_id) is record:
            del self._requests[record.request_id]

    # ------------------------------------------------------------ dispatching

    async def _dispatch_waiting(self) -> None:
        """Dispatches the waiting requests this coordinator owns in fair queue order (fairness.queue_tags)."""
        # Not one whose enqueue is under way: its score is not known here yet (0 would sort it first), and if
        # Redis has queued it by the claim, claiming it moved its class's virtual time up to its tag, a
        # flooding tenant's some hundreds deep, putting every later request of other tenants behind its queue.
        # Its enqueue wakes the next pass.
        owned = [r for r in self._requests.values() if r.run is None and not r.stream.done and r.in_redis]
        views = self._routing_views()
        loads = NO_LOADS
        if self._loads is not None:  # every queued request's model, not only those scanned: each is loaded at once
            loads = await self._loads.keep_wanted({r.request.model for r in owned}, views)
        owned.sort(key=lambda r: (r.queue_score, r.enqueued_ms))
        waiting = [
            WaitingRequest(
                r.request_id,
                r.request.model,
                r.request.prompt,
                max(r.enqueued_ms, self._started_ms, r.requeued_ms),
                r.request.tenant,
            )
            for r in owned[:QUEUE_SCAN_LIMIT]
        ]
        plan = plan_dispatch(
            waiting,
            views,
            self._prefixes.matches,
            int(time.time() * 1000),
            self._config.no_worker_wait_s,
            await self._slot_share(),
            loads,
        )
        for expiry in plan.expired:
            await self._runs.end(self._requests[expiry.request_id], SwarmError(ErrorCode.UNAVAILABLE, expiry.message))
        if not plan.assignments:
            return
        # One Redis round trip claims them all; False where another coordinator took it first.
        claimed = await self._store.claim_many([(a.request_id, a.worker.info.worker_id) for a in plan.assignments])
        for assignment, won in zip(plan.assignments, claimed, strict=True):
            record = self._requests.get(assignment.request_id)
            if won and record is not None:
                self._runs.start(record, assignment.worker)

    async def _slot_share(self) -> SlotShare:
        """The running requests per tenant and model here, and the tenants active lately, for the slot rule."""
        if time.monotonic() - self._tenants_read_at >= ACTIVE_TENANTS_READ_S:
            self._active_tenants = await self._store.active_tenants(ACTIVE_TENANT_S)
            self._tenants_read_at = time.monotonic()
        return self._share()

    def _share(self) -> SlotShare:
        """The slot rule's inputs as this process has them (the active tenants as last read)."""
        running = Counter((r.request.tenant, r.request.model) for r in self._requests.values() if r.run is not None)
        # Tenants with a request here are active now, whether or not the last read saw them.
        active = self._active_tenants | {r.request.tenant for r in self._requests.values()}
        return SlotShare(running, len(active), self._config.tenant_slot_share)

    def _routing_views(self) -> list[WorkerView]:
        """The views, with workers that just said all their slots are taken (by peers' requests) counted full."""
        now = time.monotonic()
        return [
            replace(v, inflight=v.info.slots) if self._runs.full_until.get(v.info.worker_id, 0.0) > now else v
            for v in self.views()
        ]
