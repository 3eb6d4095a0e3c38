"""One run's relay: a worker's events into its request's stream, each piece kept in Redis before any client sees it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc

from swarm.coordinator.request_record import RequestRecord, WorkerRun
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import Finished, TextPiece
from swarm.wire.convert import event_from_wire

# Worker answers that are the request's own fault: retrying elsewhere would fail the same way.
_CLIENT_FAULTS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE}

SavePiece = Callable[[int, TextPiece], Awaitable[None]]  # keeps the stream's piece number N in Redis


class WorkerFailed(Exception):
    """A worker broke off a request: its process died, it stalled, or it refused the work."""


class WorkerBusy(Exception):
    """A worker refused the request before starting it: all its slots are taken (another coordinator's
    requests fill them, which this one does not count). The request waits for a slot; the worker is fine."""


async def relay_worker_stream(record: RequestRecord, run: WorkerRun, save_piece: SavePiece) -> None:
    """Publishes the events of run.call (already opened) until Finished.

    Raises WorkerFailed when the worker breaks off (another may resume the request), WorkerBusy when
    it has no free slot, and SwarmError when it refuses the request itself (no other would take it either).
    """
    try:
        async for message in run.call:
            run.last_event = time.monotonic()
            event = event_from_wire(message)
            if isinstance(event, TextPiece):
                await save_piece(record.stream.piece_count, event)
                run.last_event = time.monotonic()
            record.stream.publish(event)
            if isinstance(event, Finished):
                return
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise WorkerBusy(exc.details() or "all slots are busy") from exc
        if exc.code() in _CLIENT_FAULTS:
            raise SwarmError(ErrorCode(exc.code().name), exc.details() or "rejected by the worker") from exc
        raise WorkerFailed(f"{exc.code().name}: {exc.details()}") from exc
    except asyncio.CancelledError:
        if run.stalled:  # cancelled by the dispatcher's stall watchdog, not by the client
            raise WorkerFailed("stalled") from None
        raise
    raise WorkerFailed("ended the stream without finishing")
