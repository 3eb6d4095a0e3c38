"""How many proposed tokens a sequence verifies in a step: as many as are likely enough to pay for their rows.

Each proposed token is a row in the batched decode. With acceptance rate `a` per position (a
proposal stops at its first rejected token, so the i-th token counts only with probability
a**i), the i-th row pays when a**i exceeds what a row costs in tokens of the whole step. A
step of n decoding sequences makes about n tokens in time fixed + n * row; one row more costs
row / (fixed + n * row) of it, i.e. n * ratio / (1 + n * ratio) tokens with ratio = row / fixed.
Verification is nearly free beside one sequence and dear beside sixteen. A sequence whose
proposals stop paying stops proposing, and probes again now and then.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Acceptance:
    """One sequence's record: an acceptance rate that forgets old steps, and totals for its Finished."""

    proposed: int = 0
    accepted: int = 0
    _hits: float = 1.0  # a prior of one hit in two trials: a = 0.5 before any evidence
    _trials: float = 2.0
    idle_steps: int = 0  # steps without a proposal since the last one

    DECAY = 0.9

    @property
    def rate(self) -> float:
        return self._hits / self._trials

    def record(self, proposed: int, accepted: int) -> None:
        """A verified proposal: accepted leading tokens of proposed (and a rejection after them, if fewer)."""
        self.proposed += proposed
        self.accepted += accepted
        self._hits = self._hits * self.DECAY + accepted
        self._trials = self._trials * self.DECAY + accepted + (1 if accepted < proposed else 0)
        self.idle_steps = 0


@dataclass(frozen=True)
class SpeculationBudget:
    longest: int = 8  # proposed tokens per sequence and step at most
    probe_every: int = 16  # steps without proposing before one token is tried again

    def limit(self, acceptance: Acceptance, decoding: int, row_cost_ratio: float) -> int:
        """How many proposed tokens this sequence may verify beside `decoding` sequences in the step, when a
        row with logits costs row_cost_ratio of a step's fixed cost (see RowCost)."""
        load = decoding * row_cost_ratio
        threshold = load / (1.0 + load)
        rate, k, chance = acceptance.rate, 0, 1.0
        while k < self.longest:
            chance *= rate
            if chance <= threshold:
                break
            k += 1
        if k == 0 and acceptance.idle_steps >= self.probe_every:
            return 1
        return k
