"""Re-cut with hysteresis: move layers on measured drift only when the move pays, sustained, never back and forth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from swarm.coordinator.planning.link_costs import Measurements
from swarm.coordinator.planning.model_plan import plan_throughput, replan
from swarm.coordinator.planning.planner import ModelPlan, NodeCapacity
from swarm.gguf_files.model_shape import ModelShape

# A re-cut must promise this much more throughput (the slowest stage this much faster)...
RECUT_MIN_GAIN = 0.15
# ...in this many measurement rounds in a row: one noisy round moves nothing.
RECUT_ROUNDS = 3


@dataclass(frozen=True)
class RecutOffer:
    """What re-planning with one round's measurements proposes."""

    plan: ModelPlan  # the current plan when no move pays enough
    gain: float  # predicted throughput of plan over the current one, under these measurements


def propose_recut(
    current: ModelPlan,
    shape: ModelShape,
    nodes: Sequence[NodeCapacity],
    measured: Measurements,
    stages: int | None = None,
    min_gain: float = RECUT_MIN_GAIN,
) -> RecutOffer:
    """The plan these measurements call for, if it serves more than (1 + min_gain) times the current one."""
    proposed = replan(current, shape, nodes, stages, measured, min_gain)
    gain = plan_throughput(shape, proposed, nodes, measured) / plan_throughput(shape, current, nodes, measured)
    return RecutOffer(proposed, gain)


class RecutWatch:
    """Counts the measurement rounds in a row that proposed a re-cut; says to re-cut after `rounds` of them.

    One noisy round, or rounds that disagree with those before (a proposal gone, then back),
    start the count again; after a re-cut the count starts afresh on measurements of the new cut.
    """

    def __init__(self, rounds: int = RECUT_ROUNDS) -> None:
        if rounds < 1:
            raise ValueError("a re-cut needs at least one round")
        self._rounds = rounds
        self.streak = 0

    def restart(self) -> None:
        self.streak = 0

    def observe(self, current: ModelPlan, offer: RecutOffer) -> ModelPlan | None:
        """The plan to move to now, or None to stay."""
        if offer.plan == current:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak < self._rounds:
            return None
        self.streak = 0
        return offer.plan
