"""A step that never ran (interrupted) gives its tokens back: every sequence is as before the step was formed."""

from __future__ import annotations

from swarm.engine.sequence import Sequence, Slot
from swarm.engine.step_rows import StepRow, add_to_step, take_back
from swarm.engine.text_stream import TextStream
from swarm.shared.stage_messages import StageWork
from swarm.shared.types import GenerationRequest, SamplingParams


def _sequence(rid: str, **state: object) -> Sequence:
    request = GenerationRequest(rid, "tiny", "prompt", 16, SamplingParams(temperature=0.0))
    sequence = Sequence(request, lambda _: None, TextStream(()))
    for name, value in state.items():
        setattr(sequence, name, value)
    return sequence


def _state(slot: Slot, sequence: Sequence) -> tuple[object, ...]:
    kept = (sequence.position, list(sequence.pending), list(sequence.replay), sequence.next_token)
    return (*kept, sequence.awaiting_token, sequence.proposal_in_flight, list(slot.cached))


def test_taking_a_step_back_restores_prompt_chunks_replayed_tokens_and_decode_rows() -> None:
    prefilling = (Slot(0, [1, 2]), _sequence("a", position=2, pending=[3, 4, 5, 6]))
    replaying = (Slot(1, [7, 8, 9]), _sequence("b", position=3, replay=[10, 11]))
    decoding = (Slot(2, [12, 13]), _sequence("c", position=2, next_token=14))
    before = [_state(*pair) for pair in (prefilling, replaying, decoding)]

    work: list[StageWork] = []
    rows: list[StepRow] = []
    slot, sequence = prefilling
    chunk, sequence.pending = sequence.pending[:3], sequence.pending[3:]
    add_to_step(work, rows, slot, sequence, tuple(chunk), "pending", sample=False)
    slot, sequence = replaying
    add_to_step(work, rows, slot, sequence, (sequence.replay.pop(0),), "replay", sample=False)
    slot, sequence = decoding
    add_to_step(work, rows, slot, sequence, (sequence.next_token, 15, 16), "decode", sample=True, proposed=2)
    assert [(w.session, w.position, w.tokens) for w in work] == [(0, 2, (3, 4, 5)), (1, 3, (10,)), (2, 2, (14, 15, 16))]
    assert [_state(*pair) for pair in (prefilling, replaying, decoding)] != before

    take_back(rows)
    assert [_state(*pair) for pair in (prefilling, replaying, decoding)] == before
