"""Converts pipeline steps between the engine's dataclasses and the Stage service's messages.

Hidden states travel as raw little-endian float32 rows, n_embd values each.
"""

from __future__ import annotations

import numpy as np

from swarm.engine.stage_executor import PipelineStep, SessionOpen, StageResult, StageWork
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import sampling_from_wire, sampling_to_wire

WIRE_DTYPE = np.dtype("<f4")


def step_to_wire(step: PipelineStep) -> pb.StageStep:
    return pb.StageStep(
        opens=[
            pb.SessionOpen(session=o.session, sampling=sampling_to_wire(o.sampling), prompt=o.prompt)
            for o in step.opens
        ],
        releases=step.releases,
        sessions=[
            pb.SessionRows(
                session=w.session,
                position=w.position,
                rows=w.rows,
                hidden=np.ascontiguousarray(w.hidden, dtype=WIRE_DTYPE).tobytes() if w.hidden is not None else b"",
                sample=w.sample,
            )
            for w in step.work
        ],
    )


def step_from_wire(msg: pb.StageStep, n_embd: int) -> PipelineStep:
    work = []
    for rows in msg.sessions:
        expected = rows.rows * n_embd * WIRE_DTYPE.itemsize
        if len(rows.hidden) != expected:
            raise ValueError(
                f"session {rows.session}: {len(rows.hidden)} bytes of hidden state, expected {expected} "
                f"({rows.rows} rows of {n_embd} float32)"
            )
        hidden = np.frombuffer(rows.hidden, dtype=WIRE_DTYPE).reshape(rows.rows, n_embd)
        work.append(StageWork(rows.session, rows.position, hidden=hidden, sample=rows.sample))
    opens = tuple(SessionOpen(o.session, sampling_from_wire(o.sampling), tuple(o.prompt)) for o in msg.opens)
    return PipelineStep(opens=opens, releases=tuple(msg.releases), work=tuple(work))


def tokens_to_wire(results: list[StageResult]) -> pb.StageStepResult:
    return pb.StageStepResult(
        tokens=[pb.SessionToken(session=r.session, token=r.token) for r in results if r.token is not None]
    )


def tokens_from_wire(msg: pb.StageStepResult) -> dict[int, int]:
    return {t.session: t.token for t in msg.tokens}
