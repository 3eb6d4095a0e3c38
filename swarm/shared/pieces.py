"""Merging text pieces: one message for many tokens when a reader falls behind the generator."""

from __future__ import annotations

from collections.abc import Sequence

from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import GenerationEvent, TextPiece


def coalesce(events: Sequence[GenerationEvent], skip_tokens: int = 0) -> list[GenerationEvent]:
    """Drops the pieces holding the first skip_tokens tokens and merges the rest into one piece.

    A client that resumes counts the tokens of the pieces it received, so the cut falls
    between pieces. One inside a piece cannot be honoured: which characters of the piece's
    text belong to which token is not known, and guessing would lose or repeat text.
    """
    pieces: list[TextPiece] = []
    rest: list[GenerationEvent] = []
    for event in events:
        if not isinstance(event, TextPiece):
            rest.append(event)
        elif skip_tokens <= 0:
            pieces.append(event)
        elif skip_tokens >= len(event.token_ids):
            skip_tokens -= len(event.token_ids)
        else:
            raise SwarmError(
                ErrorCode.INVALID_ARGUMENT,
                f"resume_after_tokens: falls {skip_tokens} tokens into a piece of {len(event.token_ids)}; "
                "send the number of tokens in the pieces received",
            )
    if len(pieces) > 1:
        pieces = [
            TextPiece(
                "".join(p.text for p in pieces),
                tuple(t for p in pieces for t in p.token_ids),
                tuple(lp for p in pieces for lp in p.logprobs),
            )
        ]
    return [*pieces, *rest]


def check_resume_point(skip_tokens: int, produced: int) -> None:
    """Raises OUT_OF_RANGE when a client claims more tokens than the request has produced.

    Every piece is kept before any client gets it, so such a count did not come from this
    request: continuing after it would lose text, and starting anew would repeat it.
    """
    if skip_tokens > produced:
        raise SwarmError(
            ErrorCode.OUT_OF_RANGE,
            f"resume_after_tokens: {skip_tokens} is more than the {produced} tokens this request has produced",
        )
