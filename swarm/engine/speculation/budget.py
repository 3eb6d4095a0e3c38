"""How many proposed tokens a sequence verifies in a step: the number that makes the step yield the most tokens
per second.

Each proposed token is a row with logits in the batched decode. With acceptance rate `a` per
position (a proposal stops at its first rejected token, so the i-th token counts only with
probability a**i), k proposed tokens add a + a**2 + ... + a**k expected tokens to the step, and
make it as slow as a step of that many more rows (StepCost, measured). Verification is nearly
free beside one sequence on a model whose rows are cheap, and dear beside sixteen or where the
output head is large. A sequence whose proposals stop paying stops proposing, and probes again
now and then.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm.engine.speculation.step_cost import StepCost


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

    def expected_tokens(self, proposed: int) -> float:
        """How many of `proposed` tokens are expected to be accepted: rate + rate**2 + ... + rate**proposed."""
        rate = self.rate
        return sum(rate**i for i in range(1, proposed + 1))

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
    probe_every: int = 64  # steps without proposing before one token is tried again
    gain: float = 1.0  # a proposal must promise this many times the tokens per second of a shorter one

    def limit(self, acceptance: Acceptance, rows: int, expected: float, cost: StepCost) -> int:
        """How many proposed tokens this sequence may verify in a step that has `rows` rows with logits so far
        (its own next token included) and is expected to yield `expected` tokens without them."""
        best, best_speed = 0, expected / cost.seconds(rows)
        for k in range(1, self.longest + 1):
            speed = (expected + acceptance.expected_tokens(k)) / cost.seconds(rows + k)
            if speed > best_speed * self.gain:
                best, best_speed = k, speed
        if best == 0 and acceptance.idle_steps >= self.probe_every:
            return 1
        return best
