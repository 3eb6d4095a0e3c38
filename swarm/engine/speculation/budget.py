"""How many proposed tokens a sequence verifies in a step: the number that makes the step yield the most tokens
per second.

Each proposed token is a row with logits in the batched decode. With acceptance rate `a` per
position (a proposal stops at its first rejected token, so the i-th token counts only with
probability a**i), k proposed tokens add a + a**2 + ... + a**k expected tokens to the step, and
make it as slow as a step of that many more rows (StepCost, measured). Verification is nearly
free beside one sequence on a model whose rows are cheap, and dear beside sixteen or where the
output head is large. A sequence whose proposals stop paying stops proposing, and probes again
now and then with the proposal that would pay were it accepted, at most a small share of its time.

A new sequence's rate starts from the worker's (WorkerAcceptance), not from a fixed guess: where one
step of two rows costs twice one row (Gemma 3 270M), a guess of one in two proposes nothing, so a
worker whose proposals are nearly always right (re-emission, a good draft) stopped proposing after
its first request.
"""

from __future__ import annotations

import math
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
    decay: float = 0.9  # per verified proposal: what an older one still counts for

    @classmethod
    def starting_at(cls, rate: float, weight: float) -> Acceptance:
        """A new record whose rate is `rate`, as if seen over `weight` trials (its own soon outweigh them)."""
        return cls(_hits=rate * weight, _trials=weight)

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
        self._hits = self._hits * self.decay + accepted
        self._trials = self._trials * self.decay + accepted + (1 if accepted < proposed else 0)
        self.idle_steps = 0


class WorkerAcceptance:
    """The acceptance rate of all of a worker's proposals, forgetting old ones slowly: a new sequence's start."""

    PRIOR_WEIGHT = 4.0  # trials a new sequence's start counts for: a few proposals of its own outweigh it

    def __init__(self) -> None:
        self._all = Acceptance(decay=0.98)  # the last hundred or so proposals count; a = 0.5 before any

    @property
    def rate(self) -> float:
        return self._all.rate

    def record(self, proposed: int, accepted: int) -> None:
        self._all.record(proposed, accepted)

    def new_sequence(self) -> Acceptance:
        return Acceptance.starting_at(self.rate, self.PRIOR_WEIGHT)


@dataclass(frozen=True)
class SpeculationBudget:
    longest: int = 8  # proposed tokens per sequence and step at most
    probe_every: int = 16  # steps without proposing before a probe, at least
    probe_share: float = 0.02  # of a sequence's step time that its probes may add, at most
    hopeful_rate: float = 0.9  # the acceptance a probe is sized for: the proposal that would pay at this rate
    gain: float = 1.0  # a proposal must promise this many times the tokens per second of a shorter one

    def __post_init__(self) -> None:
        if self.longest < 1 or self.probe_every < 0 or not self.probe_share > 0 or not 0 < self.hopeful_rate <= 1:
            raise ValueError(
                "a speculation budget needs longest >= 1, probe_every >= 0, probe_share > 0 and a rate in (0, 1]"
            )

    @classmethod
    def eager(cls) -> SpeculationBudget:
        """A budget that verifies a proposal whenever there is one, paying or not (tests and measurements)."""
        return cls(probe_every=0, probe_share=math.inf)

    def limit(self, acceptance: Acceptance, rows: int, expected: float, cost: StepCost) -> int:
        """How many proposed tokens this sequence may verify in a step that has `rows` rows with logits so far
        (its own next token included) and is expected to yield `expected` tokens without them."""
        best = self._best(acceptance, rows, expected, cost)
        if best == 0 and acceptance.idle_steps >= self.probe_every:
            # A probe: were proposals right after all (the text began to repeat, a step's cost was measured
            # during a burst of other load), the one that pays then is the one to try.
            hopeful = Acceptance.starting_at(self.hopeful_rate, 1.0)
            probe = self._best(hopeful, rows, expected, cost) or 1
            extra = cost.seconds(rows + probe) - cost.seconds(rows)
            if acceptance.idle_steps * cost.seconds(rows) >= extra / self.probe_share:
                return probe
        return best

    def _best(self, acceptance: Acceptance, rows: int, expected: float, cost: StepCost) -> int:
        best, best_speed = 0, expected / cost.seconds(rows)
        for k in range(1, self.longest + 1):
            speed = (expected + acceptance.expected_tokens(k)) / cost.seconds(rows + k)
            if speed > best_speed * self.gain:
                best, best_speed = k, speed
        return best
