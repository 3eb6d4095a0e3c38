"""RequestStream: one request's events, kept in order so any number of clients can follow them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from swarm.shared.errors import SwarmError
from swarm.shared.pieces import coalesce
from swarm.shared.types import Finished, GenerationEvent, TextPiece


class RequestStream:
    """Events are appended by whoever runs the request; followers replay from the start, then wait."""

    def __init__(self) -> None:
        self._events: list[GenerationEvent] = []
        self._error: SwarmError | None = None
        self._signal = asyncio.Event()
        self.followers = 0
        self.piece_count = 0

    @property
    def done(self) -> bool:
        return self._error is not None or (bool(self._events) and isinstance(self._events[-1], Finished))

    @property
    def pieces(self) -> tuple[TextPiece, ...]:
        return tuple(e for e in self._events if isinstance(e, TextPiece))

    @property
    def final(self) -> Finished:
        last = self._events[-1] if self._events else None
        if not isinstance(last, Finished):
            raise RuntimeError("the request has not finished")
        return last

    def publish(self, event: GenerationEvent) -> None:
        self._events.append(event)
        self.piece_count += isinstance(event, TextPiece)
        self._wake()

    def fail(self, error: SwarmError) -> None:
        self._error = error
        self._wake()

    def _wake(self) -> None:
        self._signal.set()
        self._signal = asyncio.Event()

    async def follow(self, skip_tokens: int = 0) -> AsyncGenerator[GenerationEvent, None]:
        """All events from the start, after the first skip_tokens generated tokens.

        Pieces that piled up while the follower was busy arrive as one merged piece: under
        load a slow client costs one message per wake-up, not one per token.
        """
        self.followers += 1
        try:
            sent = 0
            while True:
                if sent < len(self._events):
                    ready = self._events[sent:]
                    sent = len(self._events)
                    for event in coalesce(ready, skip_tokens):
                        yield event
                    skip_tokens = max(0, skip_tokens - sum(len(e.token_ids) for e in ready if isinstance(e, TextPiece)))
                    continue
                if self._error is not None:
                    raise self._error
                if self.done:
                    return
                await self._signal.wait()
        finally:
            self.followers -= 1
