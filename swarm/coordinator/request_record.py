"""RequestRecord: everything this coordinator holds of one request, from admission until it leaves."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from swarm.coordinator.relay.worker_channel import RunHandle
from swarm.coordinator.request_stream import RequestStream
from swarm.shared.types import GenerationRequest, WorkerInfo


@dataclass(eq=False)
class WorkerRun:
    """One attempt at a request on one worker."""

    worker: WorkerInfo
    last_event: float  # time.monotonic() of the worker's last message, for the stall watchdog
    task: asyncio.Task[None] | None = None  # the relay; cancelled when the client goes away
    call: RunHandle | None = None  # the run on the worker, once started
    stalled: bool = False  # given up on by the watchdog: its end is the worker's failure, not the client's


@dataclass(eq=False)
class RequestRecord:
    """A request waiting for a worker (run is None) or running on one; its events for every follower.

    `request.resume_tokens` are the tokens its stream already holds: a new run prefills them
    and emits only what follows, so the stream continues exactly where it stopped.
    """

    request: GenerationRequest
    enqueued_ms: int
    queue_score: float = 0.0  # its place in the queue (fairness.queue_tags), kept when it is queued again
    in_redis: bool = True  # False while its enqueue is under way: it has no lease to renew yet
    stream: RequestStream = field(default_factory=RequestStream)
    requeued_ms: int = 0  # failed over: it waits for a worker from then, not from its start
    attempts: int = 0  # runs in a row that ended without a new token
    run: WorkerRun | None = None
    admitted_ns: int = field(default_factory=time.time_ns)  # when it began waiting here, for its trace

    @property
    def request_id(self) -> str:
        return self.request.request_id

    def delivered_tokens(self) -> tuple[int, ...]:
        return tuple(token for piece in self.stream.pieces for token in piece.token_ids)
