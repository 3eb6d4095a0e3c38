"""Converts pipeline steps between the engine's dataclasses and the Stage service's messages.

Hidden states travel as raw little-endian float32 rows, n_embd values each, or bfloat16 when the
operator opts in: half the bytes, float32's range (float16 overflows on Gemma's large activations),
8 bits of mantissa (docs/benchmarks.md says what that costs).
"""

from __future__ import annotations

import numpy as np

from swarm.shared.stage_messages import HiddenStates, PipelineStep, Sampled, SessionOpen, StageResult, StageWork
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import logprob_from_wire, logprob_to_wire, sampling_from_wire, sampling_to_wire

WIRE_DTYPE = np.dtype("<f4")
BFLOAT16_DTYPE = np.dtype("<u2")  # the upper half of a float32's bits


def encode_hidden(hidden: HiddenStates, bfloat16: bool) -> bytes:
    rows = np.ascontiguousarray(hidden, dtype=WIRE_DTYPE)
    if not bfloat16:
        return rows.tobytes()
    bits = rows.view(np.uint32)
    return ((bits + np.uint32(0x8000)) >> np.uint32(16)).astype(BFLOAT16_DTYPE).tobytes()  # round to nearest


def decode_hidden(data: bytes, rows: int, n_embd: int, bfloat16: bool) -> HiddenStates:
    if not bfloat16:
        return np.frombuffer(data, dtype=WIRE_DTYPE).reshape(rows, n_embd)
    upper = np.frombuffer(data, dtype=BFLOAT16_DTYPE).astype(np.uint32) << np.uint32(16)
    return upper.view(np.float32).reshape(rows, n_embd)


def step_to_wire(step: PipelineStep, bfloat16: bool = False) -> pb.StageStep:
    return pb.StageStep(
        opens=[
            pb.SessionOpen(
                session=o.session,
                sampling=sampling_to_wire(o.sampling),
                prompt=o.prompt,
                keep=o.keep,
                traceparent=o.traceparent,
                generated=o.generated,
            )
            for o in step.opens
        ],
        releases=step.releases,
        sessions=[
            pb.SessionRows(
                session=w.session,
                position=w.position,
                rows=w.rows,
                hidden=encode_hidden(w.hidden, bfloat16) if w.hidden is not None else b"",
                sample=w.sample,
                proposal=w.proposal,
                trim=w.trim,
            )
            for w in step.work
        ],
        bfloat16=bfloat16,
    )


def step_from_wire(msg: pb.StageStep, n_embd: int) -> PipelineStep:
    work = []
    width = 2 if msg.bfloat16 else 4
    for rows in msg.sessions:
        expected = rows.rows * n_embd * width
        if len(rows.hidden) != expected:
            raise ValueError(
                f"session {rows.session}: {len(rows.hidden)} bytes of hidden state, expected {expected} "
                f"({rows.rows} rows of {n_embd} {'bfloat16' if msg.bfloat16 else 'float32'})"
            )
        hidden = decode_hidden(rows.hidden, rows.rows, n_embd, msg.bfloat16)
        if len(rows.proposal) > rows.rows - 1:
            raise ValueError(f"session {rows.session}: a proposal of {len(rows.proposal)} tokens in {rows.rows} rows")
        work.append(
            StageWork(
                rows.session,
                rows.position,
                hidden=hidden,
                sample=rows.sample,
                proposal=tuple(rows.proposal),
                trim=rows.trim,
            )
        )
    opens = tuple(
        SessionOpen(o.session, sampling_from_wire(o.sampling), tuple(o.prompt), o.keep, o.traceparent, o.generated)
        for o in msg.opens
    )
    return PipelineStep(opens=opens, releases=tuple(msg.releases), work=tuple(work))


def tokens_to_wire(results: list[StageResult]) -> pb.StageStepResult:
    return pb.StageStepResult(
        tokens=[
            pb.SessionToken(session=r.session, token=s.token, logprob=logprob_to_wire(s.logprob) if s.logprob else None)
            for r in results
            for s in r.decided
        ]
    )


def tokens_from_wire(msg: pb.StageStepResult) -> dict[int, tuple[Sampled, ...]]:
    """Each session's decided tokens, in order (one unless it sent a proposal)."""
    decided: dict[int, tuple[Sampled, ...]] = {}
    for t in msg.tokens:
        sampled = Sampled(t.token, logprob_from_wire(t.logprob) if t.HasField("logprob") else None)
        decided[t.session] = (*decided.get(t.session, ()), sampled)
    return decided
