"""DraftFeed: what the engine tells a draft PC of its sequences, and where the draft's proposals wait for it.

The engine thread calls these between steps; an implementation must return at once (it queues for
the network side) and may drop whatever it cannot send: a draft only ever makes steps longer or
shorter, never the text different.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from swarm.engine.speculation.draft_mailbox import DraftMailbox


class DraftFeed(Protocol):
    mailbox: DraftMailbox

    @property
    def paired(self) -> bool:
        """Whether a draft follows this engine's sequences now: one admitted while none does is never drafted."""
        ...

    def extend(self, sequence: str, start: int, tokens: Sequence[int]) -> None:
        """The sequence's context from position `start` on is `tokens` (start 0: its whole context, a new one)."""
        ...

    def end(self, sequence: str) -> None:
        """The sequence ended: the draft may free what it holds for it."""
        ...
