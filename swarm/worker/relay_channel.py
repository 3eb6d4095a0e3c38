"""RelayChannel: one coordinator's Relay stream on a worker; runs in, and their events out one message per step.

The engine emits each sequence's events from its thread; they gather in one outbox, and
whatever gathered while the last message was being sent (one engine step's tokens for every
sequence, or several steps' when the coordinator reads slowly) goes out as one RelayBatch,
each request's pieces merged. Requests end with their Finished, a refusal (RunEnded), a
cancel from the coordinator, or the stream's end, which frees the slots of all still running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from swarm.shared.errors import SwarmError
from swarm.shared.pieces import coalesce
from swarm.shared.types import Finished, GenerationEvent, GenerationRequest
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
        self._commands_ended = False

    async def serve(self, commands: AsyncIterator[pb.RelayCommand]) -> AsyncIterator[pb.RelayBatch]:
        """The stream's messages, until the coordinator closes its side and nothing runs."""
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
                elif self._commands_ended and not self._open:
                    return
        finally:
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
                    self._release(command.cancel_request_id, True)
        finally:
            self._commands_ended = True
            self._ready.set()

    def _start(self, run: pb.RunRequest) -> None:
        request_id = run.request_id

        def deliver(event: GenerationEvent | SwarmError) -> None:
            if request_id not in self._open:
                return  # cancelled or ended: the engine's last words for it are nobody's
            if isinstance(event, (Finished, SwarmError)):
                self._open.discard(request_id)
                self._release(request_id, False)
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
