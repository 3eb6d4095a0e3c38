"""EngineHandoff: carries events from the engine's thread onto the event loop, a round's worth at a time.

The engine emits each sequence's piece of a step one after another, with work in between;
waking the loop per piece would send each in a message of its own and cost a cross-thread
wake-up per token. Events wait here until the engine ends its round (`round_ended`, its
round listener), then one callback delivers them all on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from swarm.shared.errors import SwarmError
from swarm.shared.types import GenerationEvent

Deliver = Callable[[GenerationEvent | SwarmError], None]  # runs on the event loop


class EngineHandoff:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Deliver, GenerationEvent | SwarmError]] = []

    def emitter(self, deliver: Deliver) -> Deliver:
        """What the engine calls (on its thread) for one request's events; `deliver` gets them on the loop."""

        def emit(event: GenerationEvent | SwarmError) -> None:
            with self._lock:
                self._pending.append((deliver, event))

        return emit

    def round_ended(self) -> None:
        """On the engine thread: everything emitted so far goes to the loop in one callback."""
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, []
        self._loop.call_soon_threadsafe(_deliver_all, pending)


def _deliver_all(pending: list[tuple[Deliver, GenerationEvent | SwarmError]]) -> None:
    for deliver, event in pending:
        deliver(event)
