"""One run's relay: a worker's events into its request's stream, each piece kept in Redis before any client sees it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable

import grpc

from swarm.coordinator.relay.worker_channel import RunBroken
from swarm.coordinator.request_record import RequestRecord, WorkerRun
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import Finished, TextPiece
from swarm.wire.convert import event_from_wire

# Worker answers that are the request's own fault: retrying elsewhere would fail the same way.
_CLIENT_FAULTS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE}

log = logging.getLogger(__name__)

SavePiece = Callable[[int, TextPiece], Awaitable[None]]  # keeps the stream's piece number N in Redis
CountUsage = Callable[[Finished], Awaitable[None]]  # accounts the request's tokens before any client sees its end


class WorkerFailed(Exception):
    """A worker broke off a request: its process died, it stalled, or it refused the work."""


class WorkerBusy(Exception):
    """A worker refused the request before starting it: all its slots are taken (another coordinator's
    requests fill them, which this one does not count). The request waits for a slot; the worker is fine."""


async def relay_worker_stream(
    record: RequestRecord, run: WorkerRun, save_piece: SavePiece, count_usage: CountUsage | None = None
) -> None:
    """Publishes the events of run.call (already opened) until Finished.

    Raises WorkerFailed when the worker breaks off or stalls (another may resume the request),
    WorkerBusy when it has no free slot, and SwarmError when it refuses the request itself (no
    other would take it either).
    """
    call = run.call
    if call is None:
        raise WorkerFailed("the run was never started")
    try:
        async for message in call:
            run.last_event = time.monotonic()
            event = event_from_wire(message)
            if isinstance(event, TextPiece):
                await save_piece(record.stream.piece_count, event)
                run.last_event = time.monotonic()
            elif isinstance(event, Finished) and count_usage is not None:
                await count_usage(event)
            record.stream.publish(event)
            if isinstance(event, Finished):
                return
    except RunBroken as exc:
        if run.stalled:  # given up on by the dispatcher's stall watchdog
            raise WorkerFailed("stalled") from None
        if exc.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise WorkerBusy(exc.details or "all slots are busy") from exc
        if exc.code in _CLIENT_FAULTS:
            raise SwarmError(ErrorCode(exc.code.name), exc.details or "rejected by the worker") from exc
        raise WorkerFailed(str(exc)) from exc
    finally:
        call.cancel()  # nothing once it ended; else (the client left) frees the worker's slot
    raise WorkerFailed("ended the stream without finishing")


def give_up_on_stalled(records: Iterable[RequestRecord], down: Collection[str], idle_timeout_s: float) -> None:
    """Cancels the calls to workers that are down or sent nothing for idle_timeout_s; their requests fail over."""
    now = time.monotonic()
    for record in records:
        run = record.run
        if run is None or run.call is None or run.stalled:
            continue
        silent_s = now - run.last_event
        if silent_s > idle_timeout_s or run.worker.worker_id in down:
            log.warning(
                "worker %s is down or sent nothing for %.0f s on %s; giving up on it",
                run.worker.worker_id,
                silent_s,
                record.request_id,
            )
            run.stalled = True
            run.call.cancel("stalled")
