"""DraftMailbox: proposals from a draft PC, left per sequence by the network side and taken by the engine thread.

The engine never waits for a draft. A proposal says "after the first `start` tokens of this
sequence's context, I expect these tokens"; by the time the engine looks, the sequence may have
decided some of them already. What it decided must then match the proposal's head, and the rest of
the proposal is still a guess at what comes next: a draft that runs ahead of the target stays useful
for as many steps as it ran ahead. A proposal that the context contradicts, or that starts beyond
it, is stale and proposes nothing (the engine falls back to prompt lookup).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DraftProposal:
    start: int  # the tokens follow the sequence's first `start` tokens of context
    tokens: tuple[int, ...]


def fresh_part(proposal: DraftProposal, context: Sequence[int], limit: int) -> list[int]:
    """The proposed tokens that follow `context`, at most `limit`; [] when the proposal is stale for it."""
    ahead = len(context) - proposal.start  # context tokens decided since the draft saw it
    if limit <= 0 or ahead < 0 or ahead >= len(proposal.tokens):
        return []
    if list(context[proposal.start :]) != list(proposal.tokens[:ahead]):
        return []
    return list(proposal.tokens[ahead : ahead + limit])


class DraftMailbox:
    """The latest proposal per sequence. Thread-safe: the network side posts, the engine thread takes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, DraftProposal] = {}
        self.taken = 0  # proposed tokens the engine took from drafts, for tests and metrics

    def post(self, sequence: str, proposal: DraftProposal) -> None:
        with self._lock:
            self._latest[sequence] = proposal

    def holds(self, sequence: str) -> bool:
        """Whether a proposal for the sequence came (fresh or not): without one, nothing is worth sizing."""
        return sequence in self._latest  # one dict lookup: atomic, no lock needed

    def take(self, sequence: str, context: Sequence[int], limit: int) -> list[int]:
        """The fresh part of the sequence's latest proposal (see fresh_part); [] when it has none."""
        with self._lock:
            proposal = self._latest.get(sequence)
        if proposal is None:
            return []
        tokens = fresh_part(proposal, context, limit)
        if tokens:
            with self._lock:
                self.taken += len(tokens)
        return tokens

    def forget(self, sequence: str) -> None:
        with self._lock:
            self._latest.pop(sequence, None)

    def clear(self) -> None:
        """The draft is gone: nothing it said is used any more."""
        with self._lock:
            self._latest.clear()
