"""Membership: joins a coordinator, heartbeats at the pace it asks with the worker's load (through another
coordinator of the same Redis when that one is unreachable), and leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import grpc

from swarm.client.failover import channel_options
from swarm.shared.auth import bearer_metadata
from swarm.shared.plan_messages import StageMeasurement
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.shared.types import WorkerInfo, WorkerLoad
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.assignment_convert import measurement_to_wire
from swarm.wire.convert import worker_info_to_wire, worker_load_to_wire
from swarm.worker.coordinators import UNREACHABLE, CoordinatorRotation, coordinator_list

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 3.0
# What a coordinator answers a worker it will never take (a wrong token, a bad description):
# retrying cannot help, so the worker stops instead of serving on unrouted.
REFUSED_FOR_GOOD = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT)
# A heartbeat without this worker's secret: another worker took the id while this one was silent.
HEARTBEAT_REFUSED_FOR_GOOD = (*REFUSED_FOR_GOOD, grpc.StatusCode.PERMISSION_DENIED)
# Until the coordinator's Join answer says otherwise (an old coordinator may answer 0).
FIRST_HEARTBEAT_INTERVAL_S = 1.0


class JoinRefused(RuntimeError):
    """The coordinator will not take this worker (e.g. a wrong token); retrying cannot help."""


def _stop_when_failed(heartbeats: asyncio.Task[None], stop: asyncio.Event) -> None:
    """A heartbeat loop that died of a bug must not leave the worker serving on unrouted: it stops, and
    `joined` raises the error when its body ends."""
    if not heartbeats.cancelled() and heartbeats.exception() is not None:
        log.error("heartbeats stopped: %r; stopping this worker", heartbeats.exception())
        stop.set()


def _no_draft(address: str) -> None:
    pass


class Membership:
    """A worker's membership of a swarm, through whichever of its coordinators answers.

    coordinators: `a:50051,b:50051`, a list of addresses, or a `dns:///NAME:PORT` name. Every coordinator of
    one Redis shares the registry, so a heartbeat carrying this worker's secret counts through any of them.
    """

    def __init__(
        self,
        coordinators: str | Sequence[str],
        token: str,
        info: WorkerInfo,
        load: Callable[[], WorkerLoad],
        tls: TlsFiles | None = None,
        measure: Callable[[], StageMeasurement] | None = None,
    ) -> None:
        given = coordinators if isinstance(coordinators, str) else ",".join(coordinators)
        self.addresses = coordinator_list(given)
        self._channels = [aio_channel(a, tls, channel_options(a)) for a in self.addresses]
        self._stubs = [pb_grpc.RegistryStub(c) for c in self._channels]
        self._rotation = CoordinatorRotation(len(self.addresses))
        self._metadata = bearer_metadata(token)
        self._info = info
        self._load = load
        self._measure = measure  # a pipeline stage's measurements for the planner, sent with each heartbeat
        self.worker_id = info.worker_id
        self._secret = ""  # issued by the coordinator at each join; proves this worker on heartbeats and its leave
        self.interval_s = FIRST_HEARTBEAT_INTERVAL_S
        self.reassigned = False  # the coordinator's plan moved this worker: it must ask Assign again
        self.refused: JoinRefused | None = None  # set when the coordinator turned this worker away for good
        self._beat_now = asyncio.Event()  # its load changed in a way the coordinators must learn at once
        # Told, after each heartbeat, the draft PC the coordinator paired this worker with ("" for none).
        self.on_draft: Callable[[str], None] = _no_draft

    @property
    def coordinator(self) -> str:
        """The coordinator this worker calls now: the one that last answered."""
        return self.addresses[self._rotation.index]

    @property
    def _stub(self) -> pb_grpc.RegistryStub:
        return self._stubs[self._rotation.index]

    @property
    def _heartbeat_timeout_s(self) -> float:
        # With somewhere else to go, a hung coordinator is left within an interval, before the TTL (three) passes.
        return CALL_TIMEOUT_S if len(self.addresses) == 1 else min(CALL_TIMEOUT_S, max(1.0, self.interval_s))

    async def join(self) -> str:
        """Joins through the first coordinator that answers, retrying with backoff while none can be reached
        or the id is still held.

        An id is held while its last holder heartbeats (e.g. this worker's previous process, killed
        a moment ago): it becomes free once that one has been silent for the heartbeat TTL.
        """
        while True:
            address = self.coordinator
            try:
                reply = await self._stub.Join(
                    pb.JoinRequest(info=worker_info_to_wire(self._info)),
                    metadata=self._metadata,
                    timeout=CALL_TIMEOUT_S,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() in REFUSED_FOR_GOOD:
                    raise JoinRefused(f"coordinator {address} refused to join: {exc.details()}") from exc
                if exc.code() in UNREACHABLE:
                    delay = self._rotation.unreachable()
                    log.warning(
                        "cannot join coordinator %s (%s); trying %s in %.1f s",
                        address,
                        exc.code().name,
                        self.coordinator,
                        delay,
                    )
                else:
                    delay = self._rotation.not_yet()
                    why = exc.details() if exc.code() is grpc.StatusCode.ALREADY_EXISTS else exc.code().name
                    log.warning("cannot join coordinator %s (%s); retrying in %.1f s", address, why, delay)
                await asyncio.sleep(delay)
                continue
            self._rotation.answered()
            self.worker_id = reply.worker_id
            self._secret = reply.worker_secret
            self.interval_s = reply.heartbeat_interval_s or FIRST_HEARTBEAT_INTERVAL_S
            log.info("joined coordinator %s as %s", address, self.worker_id)
            return self.worker_id

    @contextlib.asynccontextmanager
    async def joined(self, stop: asyncio.Event) -> AsyncIterator[str | None]:
        """Joins (unless stop is set first), heartbeats while the body runs, then leaves.

        Yields the worker id, or None when stop came before the coordinator answered; the
        body runs while this worker is a member, so a drain belongs inside it. A coordinator
        that refuses this worker for good sets stop, and JoinRefused is raised once the body ended.
        """
        join = asyncio.create_task(self.join())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({join, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not join.done():
            join.cancel()
            try:
                yield None
            finally:
                await self.close()
            return
        try:
            worker_id = join.result()
        except BaseException:
            await self.close()
            raise
        heartbeats = asyncio.create_task(self.heartbeat_forever(stop))
        heartbeats.add_done_callback(lambda task: _stop_when_failed(task, stop))
        try:
            yield worker_id
        finally:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats
            if self.refused is None:
                await self.leave()
            await self.close()
        if self.refused is not None:
            raise self.refused

    async def heartbeat_forever(self, stop: asyncio.Event) -> None:
        """Heartbeats until cancelled or refused for good; sets stop when the coordinator asks this worker
        to drain, moves it, or refuses it (then self.refused says why).

        A heartbeat that cannot reach its coordinator goes to the next one at once; after a whole round
        failed, the next round waits a jittered backoff of at most one interval.
        """
        delay = self.interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), delay)
            self._beat_now.clear()
            delay = self.interval_s
            address = self.coordinator
            load = worker_load_to_wire(self._load())
            request = pb.HeartbeatRequest(worker_id=self.worker_id, load=load, worker_secret=self._secret)
            if self._measure is not None:
                request.measured.CopyFrom(measurement_to_wire(self._measure()))
            try:
                reply = await self._stub.Heartbeat(request, metadata=self._metadata, timeout=self._heartbeat_timeout_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in HEARTBEAT_REFUSED_FOR_GOOD:
                    why = f"coordinator {address} refused this worker's heartbeat: {exc.details()}"
                    self._refuse(JoinRefused(why), stop)
                    return
                if exc.code() in UNREACHABLE:
                    delay = min(self._rotation.unreachable(), self.interval_s)
                    log.warning(
                        "heartbeat to %s failed: %s; heartbeating through %s",
                        address,
                        exc.code().name,
                        self.coordinator,
                    )
                else:
                    log.warning("heartbeat to %s failed: %s", address, exc.code().name)
                continue
            self._rotation.answered()
            self.on_draft(reply.draft)
            if reply.rejoin:
                log.info("coordinator does not know this worker any more; joining again")
                try:
                    await self.join()  # retries with backoff while the coordinator is unreachable
                except JoinRefused as exc:
                    self._refuse(exc, stop)
                    return
            elif reply.reassign and not stop.is_set():
                log.info("the coordinator's plan changed: leaving to take a new assignment")
                self.reassigned = True
                stop.set()
            elif reply.drain and not stop.is_set():
                log.info("coordinator asked this worker to drain: finishing its work, then leaving")
                stop.set()

    def heartbeat_soon(self) -> None:
        """Sends the next heartbeat now (e.g. its owner paused it), not at the end of the interval."""
        self._beat_now.set()

    def _refuse(self, refusal: JoinRefused, stop: asyncio.Event) -> None:
        log.error("%s; stopping: this worker would serve on without ever being routed to", refusal)
        self.refused = refusal
        stop.set()

    async def announce_drain(self) -> None:
        """Tells the coordinators to route nothing new here (best effort: a leave follows anyway)."""
        if self.refused is not None:
            return
        request = pb.DrainRequest(worker_id=self.worker_id)
        await self._once_through_any(
            "announce the drain", lambda stub: stub.Drain(request, metadata=self._metadata, timeout=CALL_TIMEOUT_S)
        )

    async def leave(self) -> None:
        request = pb.LeaveRequest(worker_id=self.worker_id, worker_secret=self._secret)
        await self._once_through_any(
            "deregister", lambda stub: stub.Leave(request, metadata=self._metadata, timeout=CALL_TIMEOUT_S)
        )

    async def _once_through_any(self, what: str, call: Callable[[pb_grpc.RegistryStub], Awaitable[object]]) -> None:
        """One try at each coordinator from the current one until one answers; failures are only logged."""
        for _ in self.addresses:
            address = self.coordinator
            try:
                await call(self._stub)
                return
            except grpc.aio.AioRpcError as exc:
                log.warning("could not %s through %s: %s", what, address, exc.code().name)
                if exc.code() not in UNREACHABLE:
                    return
                self._rotation.unreachable()

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
