"""WorkerServicer: the gRPC face of the engine; decodes and checks runs, streams the engine's events back.

A coordinator sends all its requests here on one Relay stream (relay_channel), and gets one
message per engine step carrying every request's new tokens; Run serves one request per
stream for simple callers. Both admit a request the same way (`_admit`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import grpc

from swarm.engine.batch_engine import BatchEngine
from swarm.engine.embedder import Embedder
from swarm.shared import tracing
from swarm.shared.auth import TokenGate
from swarm.shared.embedding_messages import EmbedResult, check_inputs
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.pieces import coalesce
from swarm.shared.tracing import NO_SPAN
from swarm.shared.types import Finished, GenerationEvent, GenerationRequest, TextPiece
from swarm.shared.validation import InvalidRequest, RequestLimits, check_run
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.convert import event_to_wire, run_request_from_wire
from swarm.wire.embedding_convert import embed_request_from_wire, embed_result_to_wire
from swarm.wire.grpc_errors import error_boundary
from swarm.worker.engine_handoff import EngineHandoff
from swarm.worker.relay_channel import RelayChannel

Deliver = Callable[[GenerationEvent | SwarmError], None]  # called on the event loop


class WorkerServicer(pb_grpc.WorkerServicer):  # type: ignore[misc]
    def __init__(self, engine: BatchEngine, model_name: str, token: str, away: Callable[[], str] = lambda: "") -> None:
        self._engine = engine
        self._model_name = model_name
        self._gate = TokenGate(token, "Run call")
        self.worker_id = ""
        self.draining = False
        self._away = away  # why the PC's owner lets it take nothing new now; "" when it may
        self.accepted = 0  # requests taken since start, for the worker's metrics
        self.idle = asyncio.Event()
        self.idle.set()
        self._running: dict[str, Deliver] = {}
        self._relays: set[RelayChannel] = set()
        self._handoff: EngineHandoff | None = None
        self.embedder: Embedder | None = None  # a whole model's; a pipeline stage cannot embed

    @property
    def active(self) -> int:
        return len(self._running)

    # ------------------------------------------------------------ one request's life, for both calls

    def _admit(self, request: pb.RunRequest, deliver: Deliver) -> GenerationRequest:
        """Checks the run and hands it to the engine; its events go to deliver until `_release`."""
        if self.draining:
            raise SwarmError(ErrorCode.UNAVAILABLE, "worker is leaving the swarm")
        if away := self._away():
            raise SwarmError(ErrorCode.UNAVAILABLE, f"worker is {away}")
        if self.active >= self._engine.config.slots:
            raise SwarmError(ErrorCode.RESOURCE_EXHAUSTED, "all slots are busy")
        generation = run_request_from_wire(request, self._model_name)
        if generation.request_id in self._running:
            raise SwarmError(ErrorCode.ALREADY_EXISTS, f"request {generation.request_id!r} already runs here")
        check_run(generation, RequestLimits(), self._engine.context_per_slot)
        if self._handoff is None:  # the first run tells which loop serves: bound then
            self._handoff = EngineHandoff(asyncio.get_running_loop())
            self._engine.round_listener = self._handoff.round_ended
        self._running[generation.request_id] = deliver
        self.accepted += 1
        self.idle.clear()
        emit = self._handoff.emitter(lambda event: deliver(self._signed(event)))
        # A relayed run carries its trace itself (its stream is shared); a Run call's is in its metadata.
        with tracing.span("worker.Run", request.traceparent, tracing.Kind.SERVER) if request.traceparent else NO_SPAN:
            self._engine.submit(generation, emit)
        return generation

    def _signed(self, event: GenerationEvent | SwarmError) -> GenerationEvent | SwarmError:
        if isinstance(event, Finished):
            return replace(event, worker_id=self.worker_id)
        return event

    def _release(self, request_id: str, cancel: bool) -> None:
        """The request ended (or its caller left, then cancel frees its slot in the engine)."""
        if self._running.pop(request_id, None) is None:
            return
        if cancel:
            self._engine.cancel(request_id)
        if not self._running:
            self.idle.set()

    def hand_back(self) -> int:
        """Leaving or paused: ends every running request with UNAVAILABLE so the coordinator resumes it elsewhere."""
        running = list(self._running.items())
        for request_id, deliver in running:
            self._engine.cancel(request_id)
            deliver(SwarmError(ErrorCode.UNAVAILABLE, "worker is leaving; resume this request elsewhere"))
        return len(running)

    def end_relays(self) -> None:
        """Leaving: each coordinator's Relay stream ends once nothing runs on it."""
        for relay in self._relays:
            relay.close()

    # ------------------------------------------------------------ the calls

    @error_boundary
    async def Relay(
        self, commands: AsyncIterator[pb.RelayCommand], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RelayBatch]:
        await self._gate.check(context)
        channel = RelayChannel(self._admit, self._release)
        self._relays.add(channel)
        try:
            async for batch in channel.serve(commands):
                yield batch
        finally:
            self._relays.discard(channel)

    @error_boundary
    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext) -> pb.EmbedResponse:
        await self._gate.check(context)
        if self.draining:
            raise SwarmError(ErrorCode.UNAVAILABLE, "worker is leaving the swarm")
        if away := self._away():
            raise SwarmError(ErrorCode.UNAVAILABLE, f"worker is {away}")
        if self.embedder is None:
            raise SwarmError(ErrorCode.FAILED_PRECONDITION, "this worker serves a pipeline stage: it cannot embed")
        embed = embed_request_from_wire(request)
        try:
            check_inputs(embed.inputs)
        except InvalidRequest as exc:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        vectors, tokens = await self.embedder.embed(embed.inputs)
        return embed_result_to_wire(EmbedResult(self._model_name, tuple(map(tuple, vectors)), tokens, self.worker_id))

    @error_boundary
    async def Run(
        self, request: pb.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        await self._gate.check(context)
        events: asyncio.Queue[GenerationEvent | SwarmError] = asyncio.Queue()
        generation = self._admit(request, events.put_nowait)
        finished = False
        try:
            while True:
                event = await _next_event(events)
                if isinstance(event, SwarmError):
                    finished = True
                    raise event
                finished = isinstance(event, Finished)
                yield event_to_wire(generation.request_id, event)
                if finished:
                    return
        finally:
            self._release(generation.request_id, cancel=not finished)  # the caller left: free the slot now


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
