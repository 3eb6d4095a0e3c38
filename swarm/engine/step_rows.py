"""A step being formed: each sequence's tokens as StageWork, and the row that remembers whose they were."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from swarm.engine.sequence import Sequence, Slot
from swarm.shared.stage_messages import StageWork

TakenFrom = Literal["pending", "replay", "decode"]  # a prompt chunk, a failover's replayed token, or decoding


@dataclass(frozen=True)
class StepRow:
    """One sequence's rows in a step in flight; its token is dropped if the sequence ended meanwhile."""

    slot: Slot
    sequence: Sequence
    sample: bool
    tokens: tuple[int, ...]
    taken_from: TakenFrom  # where the tokens came from: where they go back if the step never runs
    proposed: int = 0  # trailing tokens that are a proposal to verify


def add_to_step(
    work: list[StageWork],
    rows: list[StepRow],
    slot: Slot,
    sequence: Sequence,
    tokens: tuple[int, ...],
    taken_from: TakenFrom,
    sample: bool,
    proposed: int = 0,
) -> None:
    """Puts a sequence's tokens into the step being formed; they are in its cache from now on (a proposal's
    rejected tail leaves it when the step's tokens are received)."""
    work.append(StageWork(slot.seq_id, sequence.position, tokens, sample=sample))
    rows.append(StepRow(slot, sequence, sample, tokens, taken_from, proposed))
    slot.cached.extend(tokens)
    sequence.position += len(tokens)
    sequence.awaiting_token = sample
    sequence.proposal_in_flight = proposed


def take_back(rows: list[StepRow]) -> None:
    """Undoes add_to_step for each row of a step that never ran (interrupted): its sequences are as before it."""
    for row in reversed(rows):
        slot, sequence, tokens = row.slot, row.sequence, row.tokens
        del slot.cached[len(slot.cached) - len(tokens) :]
        sequence.position -= len(tokens)
        sequence.awaiting_token = False  # only a sequence not awaiting one steps (the steps that can be cut: one)
        sequence.proposal_in_flight = 0
        if row.taken_from == "pending":
            sequence.pending[:0] = tokens
        elif row.taken_from == "replay":
            sequence.replay[:0] = tokens
