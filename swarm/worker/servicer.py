"""WorkerServicer: the gRPC face of the engine; decodes and checks a RunRequest, streams the engine's events back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from swarm.engine.batch_engine import BatchEngine
from swarm.shared.auth import TokenGate
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.pieces import coalesce
from swarm.shared.types import Finished, GenerationEvent, TextPiece
from swarm.shared.validation import RequestLimits, check_run
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.convert import event_to_wire, run_request_from_wire
from swarm.wire.grpc_errors import error_boundary


class WorkerServicer(pb_grpc.WorkerServicer):  # type: ignore[misc]
    def __init__(self, engine: BatchEngine, model_name: str, token: str) -> None:
        self._engine = engine
        self._model_name = model_name
        self._gate = TokenGate(token, "Run call")
        self.worker_id = ""
        self.draining = False
        self.active = 0
        self.accepted = 0  # requests taken since start, for the worker's metrics
        self.idle = asyncio.Event()
        self.idle.set()
        self._events: dict[str, asyncio.Queue[GenerationEvent | SwarmError]] = {}

    @staticmethod
    async def _next_event(events: asyncio.Queue[GenerationEvent | SwarmError]) -> GenerationEvent | SwarmError:
        """The next event; pieces that piled up while the caller was slow come merged into one."""
        event = await events.get()
        if not isinstance(event, TextPiece) or events.empty():
            return event
        pending: list[TextPiece] = [event]
        while not events.empty():
            following = events.get_nowait()
            if not isinstance(following, TextPiece):
                events.put_nowait(following)  # a finish or error is always last: putting it back keeps order
                break
            pending.append(following)
        return coalesce(pending)[0]

    def hand_back(self) -> int:
        """Leaving: ends every running request with UNAVAILABLE so the coordinator resumes it elsewhere."""
        for request_id, events in list(self._events.items()):
            self._engine.cancel(request_id)
            events.put_nowait(SwarmError(ErrorCode.UNAVAILABLE, "worker is leaving; resume this request elsewhere"))
        return len(self._events)

    @error_boundary
    async def Run(
        self, request: pb.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        await self._gate.check(context)
        if self.draining:
            raise SwarmError(ErrorCode.UNAVAILABLE, "worker is leaving the swarm")
        if self.active >= self._engine.config.slots:
            raise SwarmError(ErrorCode.RESOURCE_EXHAUSTED, "all slots are busy")
        generation = run_request_from_wire(request, self._model_name)
        check_run(generation, RequestLimits(), self._engine.context_per_slot)
        events: asyncio.Queue[GenerationEvent | SwarmError] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.active += 1
        self.accepted += 1
        self.idle.clear()
        finished = False

        def emit(event: GenerationEvent | SwarmError) -> None:  # runs on the engine thread
            loop.call_soon_threadsafe(events.put_nowait, event)

        self._events[generation.request_id] = events
        try:
            self._engine.submit(generation, emit)
            while True:
                event = await self._next_event(events)
                if isinstance(event, SwarmError):
                    finished = True
                    raise event
                if isinstance(event, Finished):
                    finished = True
                    event = Finished(
                        event.reason,
                        event.prompt_tokens,
                        event.completion_tokens,
                        self.worker_id,
                        event.cached_prompt_tokens,
                    )
                yield event_to_wire(generation.request_id, event)
                if finished:
                    return
        finally:
            self._events.pop(generation.request_id, None)
            if not finished:  # the caller cancelled or went away: free the slot now
                self._engine.cancel(generation.request_id)
            self.active -= 1
            if self.active == 0:
                self.idle.set()
