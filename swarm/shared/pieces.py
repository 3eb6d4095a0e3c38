"""Merging text pieces: one message for many tokens when a reader falls behind the generator."""

from __future__ import annotations

from collections.abc import Sequence

from swarm.shared.types import GenerationEvent, TextPiece


def coalesce(events: Sequence[GenerationEvent], skip_tokens: int = 0) -> list[GenerationEvent]:
    """Drops the pieces holding the first skip_tokens tokens and merges the rest into one piece."""
    pieces: list[TextPiece] = []
    rest: list[GenerationEvent] = []
    for event in events:
        if not isinstance(event, TextPiece):
            rest.append(event)
        elif skip_tokens > 0:
            skip_tokens -= len(event.token_ids)
        else:
            pieces.append(event)
    if len(pieces) > 1:
        pieces = [TextPiece("".join(p.text for p in pieces), tuple(t for p in pieces for t in p.token_ids))]
    return [*pieces, *rest]
