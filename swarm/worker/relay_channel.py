"""RelayChannel: one coordinator's Relay stream on a worker; runs in, and their events out one message per step.

The engine emits each sequence's events from its thread; they gather in one outbox, and
whatever gathered while the last message was being sent (one engine step's tokens for every
sequence, or several steps' when the coordinator reads slowly) goes out as one RelayBatch,
each request's pieces merged. A run read only as a whole answer (its piece_interval_ms) sends
its first piece at once and holds the rest up to that long (all held pieces go together, or
with the run's end): the coordinator then handles its tokens a bunch at a time. Requests end
with their Finished, a refusal (RunEnded), a cancel from the coordinator, or the stream's
end, which frees the slots of all still running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from swarm.shared.errors import SwarmError
from swarm.shared.pieces import coalesce
from swarm.shared.types import Finished, GenerationEvent, GenerationRequest, TextPiece
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import event_to_wire

Deliver = Callable[[GenerationEvent | SwarmError], None]
Admit = Callable[[pb.RunRequest, Deliver], GenerationRequest]  # raises SwarmError when refused
Release = Callable[[str, bool], None]  # request id, whether to cancel it in the engine

_Outgoing = tuple[str, GenerationEvent | SwarmError]


class RelayChannel:
    def __init__(self, admit: Admit, release: Release) -> None:
        self._admit = admit
        self._release = release
        self._open: set[str] = set()  # requests running for this stream
        self._outbox: list[_Outgoing] = []
        self._ready = asyncio.Event()
        self._held: dict[str, list[TextPiece]] = {}  # whole-answer runs' pieces not yet due
        self._held_due: asyncio.TimerHandle | None = None  # moves them to the outbox
        self._commands_ended = False
        self._closing = False

    def close(self) -> None:
        """Ends the stream from this side once nothing runs on it (the worker leaves): the server's stop then
        waits for no open stream (else its whole grace period, every time)."""
        self._closing = True
        self._ready.set()

    async def serve(self, commands: AsyncIterator[pb.RelayCommand]) -> AsyncIterator[pb.RelayBatch]:
        """The stream's messages, until the coordinator closes its side (or close() is called) and nothing runs."""
        reader = asyncio.create_task(self._read(commands), name="relay-commands")
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                if reader.done() and reader.exception() is not None:
                    raise reader.exception()  # type: ignore[misc]
                if self._outbox:
                    outgoing, self._outbox = self._outbox, []
                    yield _pack(outgoing)
                elif (self._commands_ended or self._closing) and not self._open:
                    return
        finally:
            if self._held_due is not None:
                self._held_due.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            for request_id in self._open:
                self._release(request_id, True)
            self._open.clear()

    async def _read(self, commands: AsyncIterator[pb.RelayCommand]) -> None:
        try:
            async for command in commands:
                if command.HasField("run"):
                    self._start(command.run)
                elif command.cancel_request_id in self._open:
                    self._open.discard(command.cancel_request_id)
                    self._held.pop(command.cancel_request_id, None)
                    self._release(command.cancel_request_id, True)
        finally:
            self._commands_ended = True
            self._ready.set()

    def _start(self, run: pb.RunRequest) -> None:
        request_id = run.request_id
        hold_s = run.piece_interval_ms / 1000
        first_sent = False

        def deliver(event: GenerationEvent | SwarmError) -> None:
            nonlocal first_sent
            if request_id not in self._open:
                return  # cancelled or ended: the engine's last words for it are nobody's
            if isinstance(event, (Finished, SwarmError)):
                self._open.discard(request_id)
                self._release(request_id, False)
                self._outbox.extend((request_id, piece) for piece in self._held.pop(request_id, ()))
            if hold_s and isinstance(event, TextPiece) and first_sent:
                self._hold(request_id, event, hold_s)
                return
            first_sent = True  # the first piece goes at once: time to first token is measured by it
            self._send(request_id, event)

        try:
            self._admit(run, deliver)
        except SwarmError as refusal:
            self._send(request_id, refusal)
            return
        self._open.add(request_id)

    def _send(self, request_id: str, event: GenerationEvent | SwarmError) -> None:
        self._outbox.append((request_id, event))
        self._ready.set()

    def _hold(self, request_id: str, piece: TextPiece, hold_s: float) -> None:
        """Keeps the piece back; it is sent, with every piece held meanwhile, at the latest hold_s from now."""
        self._held.setdefault(request_id, []).append(piece)
        loop = asyncio.get_running_loop()
        due = loop.time() + hold_s
        if self._held_due is None or due < self._held_due.when():
            if self._held_due is not None:
                self._held_due.cancel()
            self._held_due = loop.call_at(due, self._release_held)

    def _release_held(self) -> None:
        self._held_due = None
        for request_id, pieces in self._held.items():
            self._outbox.extend((request_id, piece) for piece in pieces)
        self._held.clear()
        self._ready.set()


def _pack(outgoing: list[_Outgoing]) -> pb.RelayBatch:
    """One message: each request's events in order, its consecutive pieces merged into one."""
    by_request: dict[str, list[GenerationEvent | SwarmError]] = {}
    for request_id, event in outgoing:
        by_request.setdefault(request_id, []).append(event)
    batch = pb.RelayBatch()
    for request_id, events in by_request.items():
        ending = events[-1] if isinstance(events[-1], SwarmError) else None
        generated = [e for e in events if not isinstance(e, SwarmError)]
        batch.events.extend(event_to_wire(request_id, event) for event in coalesce(generated))
        if ending is not None:
            batch.ended.append(pb.RunEnded(request_id=request_id, code=ending.code.value, message=ending.message))
    return batch
