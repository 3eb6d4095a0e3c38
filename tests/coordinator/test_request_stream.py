"""RequestStream replays, merges pieces that piled up, and resumes after the tokens a client already has."""

import asyncio

import pytest

from swarm.coordinator.request_stream import RequestStream
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.pieces import coalesce
from swarm.shared.types import Finished, FinishReason, GenerationEvent, TextPiece

DONE = Finished(FinishReason.LENGTH, 3, 4)


def pieces(*texts: str) -> list[TextPiece]:
    return [TextPiece(t, (i,)) for i, t in enumerate(texts)]


def test_coalesce_merges_pieces_and_keeps_the_finish_last() -> None:
    merged = coalesce([*pieces("a", "b", "c"), DONE])
    assert merged == [TextPiece("abc", (0, 1, 2)), DONE]


def test_coalesce_skips_the_tokens_already_received() -> None:
    assert coalesce([*pieces("a", "b", "c"), DONE], skip_tokens=2) == [TextPiece("c", (2,)), DONE]
    assert coalesce([*pieces("a", "b"), DONE], skip_tokens=5) == [DONE]


def test_coalesce_keeps_text_only_pieces_after_the_cut() -> None:
    events = [TextPiece("ab", (1, 2)), TextPiece("!", ()), TextPiece("c", (3,))]
    assert coalesce(events, skip_tokens=2) == [TextPiece("!c", (3,))]


def test_a_resume_point_inside_a_piece_is_refused_not_rounded() -> None:
    # Dropping the whole piece lost tokens; keeping it repeated some. Which characters of
    # "abc" belong to token 2 is not known, so the cut is refused, naming the field.
    with pytest.raises(SwarmError) as caught:
        coalesce([TextPiece("a", (1,)), TextPiece("bc", (2, 3)), DONE], skip_tokens=2)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert caught.value.message.startswith("resume_after_tokens:")


def test_a_late_follower_gets_everything_once_in_order() -> None:
    async def scenario() -> tuple[list[GenerationEvent], list[GenerationEvent]]:
        stream = RequestStream()
        stream.publish(TextPiece("x", (7,)))
        early: list[GenerationEvent] = []

        async def follow_early() -> None:
            early.extend([e async for e in stream.follow()])

        task = asyncio.create_task(follow_early())
        await asyncio.sleep(0)
        for piece in pieces("a", "b"):
            stream.publish(piece)
            await asyncio.sleep(0)
        stream.publish(DONE)
        await task
        late = [e async for e in stream.follow(skip_tokens=2)]
        return early, late

    early, late = asyncio.run(scenario())
    assert "".join(e.text for e in early if isinstance(e, TextPiece)) == "xab"
    assert early[-1] == DONE
    assert late == [TextPiece("b", (1,)), DONE]
