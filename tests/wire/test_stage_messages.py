"""Pipeline steps on the wire: float32 exact, bfloat16 half the bytes, malformed rows refused."""

import numpy as np
import pytest

from swarm.shared.stage_messages import PipelineStep, SessionOpen, StageWork
from swarm.shared.types import SamplingParams
from swarm.wire.stage_messages import step_from_wire, step_to_wire

N_EMBD = 8


def step() -> PipelineStep:
    rows = np.random.default_rng(0).standard_normal((3, N_EMBD)).astype(np.float32)
    return PipelineStep(
        opens=(
            SessionOpen(1, SamplingParams(temperature=0.0, top_k=5, grammar='root ::= "a"'), (1, 2, 3), generated=2),
        ),
        releases=(0,),
        work=(StageWork(1, 4, hidden=rows, sample=True),),
    )


def test_float32_round_trip_is_exact() -> None:
    back = step_from_wire(step_to_wire(step()), N_EMBD)
    original = step()
    assert back.opens == original.opens and back.releases == original.releases
    assert back.work[0].hidden is not None and original.work[0].hidden is not None
    assert np.array_equal(back.work[0].hidden, original.work[0].hidden)
    assert (back.work[0].session, back.work[0].position, back.work[0].sample) == (1, 4, True)


def test_bfloat16_halves_the_bytes_and_stays_close() -> None:
    full, half = step_to_wire(step()), step_to_wire(step(), bfloat16=True)
    assert len(half.sessions[0].hidden) * 2 == len(full.sessions[0].hidden)
    back = step_from_wire(half, N_EMBD).work[0].hidden
    original = step().work[0].hidden
    assert back is not None and original is not None and back.dtype == np.float32
    assert np.allclose(back, original, rtol=1 / 128, atol=0)  # 8 bits of mantissa
    huge = PipelineStep(work=(StageWork(1, 0, hidden=np.full((1, N_EMBD), 3e5, dtype=np.float32)),))
    wide = step_from_wire(step_to_wire(huge, bfloat16=True), N_EMBD).work[0].hidden
    assert wide is not None and np.all(np.isfinite(wide))  # float16 would overflow here


def test_a_wrong_number_of_bytes_is_refused_naming_the_session() -> None:
    message = step_to_wire(step())
    message.sessions[0].hidden = message.sessions[0].hidden[:-4]
    with pytest.raises(ValueError, match="session 1"):
        step_from_wire(message, N_EMBD)
