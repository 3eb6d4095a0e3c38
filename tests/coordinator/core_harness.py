"""The coordinator's request core in-process: real Redis, real Dispatcher and service, fake worker calls.

A fake worker generates token 100 + i as text "t{i} " at position i, so any run, first or
resumed, agrees on every token; tests hold it at a position, make it fail, and read the
RunRequests it was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.dispatcher import Dispatcher
from swarm.coordinator.liveness import HeartbeatMonitor
from swarm.coordinator.planning.queued_demand import QueuedDemand
from swarm.coordinator.planning.shared_demand import SharedDemand
from swarm.coordinator.registry import WorkerRegistry
from swarm.coordinator.relay.worker_calls import WorkerCalls
from swarm.coordinator.relay.worker_channel import RunBroken
from swarm.coordinator.request_store import RequestStore
from swarm.coordinator.service import InferenceService
from swarm.shared.types import Finished, GenerationEvent, RawRequest, TextPiece, WorkerId, WorkerInfo
from swarm.wire import swarm_pb2 as pb

T = TypeVar("T")

FIRST_TOKEN = 100


def token(position: int) -> int:
    return FIRST_TOKEN + position


def expected_tokens(count: int) -> tuple[int, ...]:
    return tuple(token(i) for i in range(count))


@dataclass
class FakeWorker:
    worker_id: str
    slots: int = 4
    fail_at: int | None = None  # the position at which its calls break off with UNAVAILABLE
    refuse: grpc.StatusCode | None = None  # answers every call with this status at once
    hold_at: int | None = None  # the position before which its calls wait for `release`
    release: asyncio.Event = field(default_factory=asyncio.Event)
    runs: list[pb.RunRequest] = field(default_factory=list)
    reached: dict[str, int] = field(default_factory=dict)  # request id -> tokens its last call emitted
    joins_at_start: bool = True  # False: the test joins it later (service.join(worker.info()))
    model: str = "m"

    @property
    def address(self) -> str:
        return f"fake-{self.worker_id}:1"

    def info(self) -> WorkerInfo:
        return WorkerInfo(WorkerId(self.worker_id), self.address, self.model, 512, self.slots, 1)


class FakeCall:
    """What a RunHandle offers the dispatcher: async iteration and cancel()."""

    def __init__(self, worker: FakeWorker, request: pb.RunRequest) -> None:
        self._worker = worker
        self._request = request
        self._cancelled = asyncio.Event()

    def cancel(self, reason: str = "cancelled") -> None:
        self._cancelled.set()

    def __aiter__(self) -> AsyncIterator[pb.GenerateResponse]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[pb.GenerateResponse]:
        worker, request = self._worker, self._request
        if worker.refuse is not None:
            raise RunBroken(worker.refuse, "refused by the fake worker")
        for position in range(len(request.resume_tokens), request.max_tokens):
            if position == worker.fail_at:
                raise RunBroken(grpc.StatusCode.UNAVAILABLE, "the fake worker died")
            if position == worker.hold_at:
                await asyncio.wait(
                    [asyncio.ensure_future(worker.release.wait()), asyncio.ensure_future(self._cancelled.wait())],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            if self._cancelled.is_set():
                raise RunBroken(grpc.StatusCode.CANCELLED, "cancelled")
            await asyncio.sleep(0)  # a real call yields between messages
            worker.reached[request.request_id] = position + 1
            yield pb.GenerateResponse(piece=pb.TextPiece(text=f"t{position} ", token_ids=[token(position)]))
        yield pb.GenerateResponse(
            finished=pb.Finished(
                reason=pb.FINISH_REASON_LENGTH,
                prompt_tokens=len(request.prompt.split()),
                completion_tokens=request.max_tokens,
                worker_id=worker.worker_id,
            )
        )


class FakeWorkerCalls(WorkerCalls):
    def __init__(self, workers: list[FakeWorker]) -> None:
        super().__init__(token="")
        self.workers = {w.address: w for w in workers}

    def run(self, address: str, request: pb.RunRequest) -> Any:
        worker = self.workers[address]
        worker.runs.append(request)
        return FakeCall(worker, request)


@dataclass
class Core:
    redis: Redis
    store: RequestStore
    registry: WorkerRegistry
    monitor: HeartbeatMonitor
    dispatcher: Dispatcher
    service: InferenceService
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # its background loops

    async def die(self) -> None:
        """As a SIGKILL would: its loops and relays stop, nothing in Redis is cleaned up or released."""
        relays = [r.run.task for r in self.dispatcher._requests.values() if r.run is not None and r.run.task]
        for task in [*self.tasks, *relays]:
            task.cancel()
        _, running = await asyncio.wait([*self.tasks, *relays], timeout=5)
        assert not running, f"tasks ignored their cancellation: {running}"
        self.dispatcher._requests.clear()  # its memory is gone: its clients' streams end with nothing to clean


def core_config(**overrides: Any) -> CoordinatorConfig:
    defaults: dict[str, Any] = {
        "http": "",
        "advertise": False,
        "poll_interval_s": 0.02,
        "heartbeat_ttl_s": 120.0,  # fake workers send no heartbeats: they stay up unless a failure marks them down
        "no_worker_wait_s": 1.0,
        "lease_ttl_s": 0.5,  # a stopped core's requests are taken over quickly
    }
    return CoordinatorConfig(**{**defaults, **overrides})


@asynccontextmanager
async def running_core(
    redis_url: str,
    workers: list[FakeWorker],
    config: CoordinatorConfig | None = None,
    redis: Redis | None = None,
    join: bool = True,
    demand: SharedDemand | None = None,
    **dispatcher_options: Any,
) -> AsyncIterator[Core]:
    """A Dispatcher, HeartbeatMonitor and InferenceService running on a real Redis, as serve_coordinator wires them.

    join=False: the workers already joined through another core on this Redis (a second coordinator).
    demand: the planned models' fleet and shared demand, for the service and the dispatcher's QueuedDemand.
    """
    config = config or core_config()
    own_redis = redis is None
    redis = redis or Redis.from_url(redis_url, decode_responses=True)
    registry = WorkerRegistry(redis, config.heartbeat_ttl_s)
    store = RequestStore(redis, lease_ttl_s=config.lease_ttl_s)
    monitor = HeartbeatMonitor(registry, config.poll_interval_s, config.forget_worker_after_s)
    if demand is not None:
        dispatcher_options["loads"] = QueuedDemand(demand, config.model_load_wait_s)
    dispatcher = Dispatcher(config, store, registry, monitor, FakeWorkerCalls(workers), **dispatcher_options)
    monitor.on_change = dispatcher.wake
    service = InferenceService(config, dispatcher, registry, store, demand)
    for worker in workers:
        if join and worker.joins_at_start:
            await service.join(worker.info())
    await dispatcher.recover()
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(monitor.run()), asyncio.create_task(dispatcher.run())]
    try:
        yield Core(redis, store, registry, monitor, dispatcher, service, tasks)
    finally:
        for task in tasks:
            task.cancel()
        _, running = await asyncio.wait(tasks, timeout=5)
        assert not running, f"background loops ignored their cancellation: {running}"
        await dispatcher.shutdown()
        if own_redis:
            await redis.aclose()


async def collect(events: AsyncIterator[GenerationEvent]) -> tuple[tuple[int, ...], str, Finished]:
    """Every token and the text of a stream, and its finish; fails if it ends without one."""
    tokens: list[int] = []
    text = ""
    finished = None
    async for event in events:
        if isinstance(event, TextPiece):
            tokens.extend(event.token_ids)
            text += event.text
        else:
            finished = event
    assert finished is not None, "the stream ended without a finish"
    return tuple(tokens), text, finished


async def left_redis(core: Core, request_id: str) -> bool:
    """Ended here: neither queued nor running, no pieces, lease or watcher, and its hash gone or kept as done
    only for the delivered grace (a client may not have read the last pieces when a coordinator dies)."""
    key = keys.request_key(request_id)
    state, ttl = await core.redis.hget(key, "state"), await core.redis.ttl(key)
    settled = state is None or (state == keys.RequestState.DONE and 0 < ttl <= keys.DELIVERED_GRACE_S)
    others = [keys.request_pieces_key(request_id), keys.request_lease_key(request_id)]
    others.append(keys.request_watched_key(request_id))
    queued = await core.redis.zscore(keys.QUEUE, request_id) is not None
    running = await core.redis.sismember(keys.RUNNING, request_id)
    return settled and not queued and not running and not await core.redis.exists(*others)


def request(request_id: str = "", max_tokens: int = 8, resume_after_tokens: int = 0) -> RawRequest:
    return RawRequest(
        model="m",
        prompt="hello there",
        max_tokens=max_tokens,
        temperature=0.0,
        request_id=request_id,
        resume_after_tokens=resume_after_tokens,
    )


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Polls a condition on the event loop; raises TimeoutError naming what never happened."""
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}") from None


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Runs an async test scenario in a fresh event loop, bounded so a hang fails the test."""
    return asyncio.run(asyncio.wait_for(scenario(), 30))  # type: ignore[arg-type]
