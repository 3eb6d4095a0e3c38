"""A step being formed: each sequence's tokens as StageWork, and the row that remembers whose they were."""

from __future__ import annotations

from dataclasses import dataclass

from swarm.engine.sequence import Sequence, Slot
from swarm.shared.stage_messages import StageWork


@dataclass(frozen=True)
class StepRow:
    """One sequence's rows in a step in flight; its token is dropped if the sequence ended meanwhile."""

    slot: Slot
    sequence: Sequence
    sample: bool
    proposed: int = 0  # trailing tokens that are a proposal to verify


def add_to_step(
    work: list[StageWork],
    rows: list[StepRow],
    slot: Slot,
    sequence: Sequence,
    tokens: tuple[int, ...],
    sample: bool,
    proposed: int = 0,
) -> None:
    """Puts a sequence's tokens into the step being formed; they are in its cache from now on (a proposal's
    rejected tail leaves it when the step's tokens are received)."""
    work.append(StageWork(slot.seq_id, sequence.position, tokens, sample=sample))
    rows.append(StepRow(slot, sequence, sample, proposed))
    slot.cached.extend(tokens)
    sequence.position += len(tokens)
    sequence.awaiting_token = sample
    sequence.proposal_in_flight = proposed
