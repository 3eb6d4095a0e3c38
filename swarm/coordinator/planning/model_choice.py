"""Which model each node of a multi-model swarm serves: pure decisions, state in and choice out.

A node serves one model at a time. Pinned models and the first (primary) model are loaded as soon
as nodes offer; another model is loaded when a request asks for it and no node serves it, on a
node that asks for work or, failing that, on one taken from another model: first from a model
with nodes to spare, else from the least recently used model that is not pinned. A node that is
busy, or loaded its model less than `residency_s` ago, is never taken, so models do not thrash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from swarm.shared.types import NodeId


@dataclass(frozen=True)
class FleetNode:
    node_id: NodeId
    model: str  # what it serves ("" while it serves nothing)
    fits: frozenset[str]  # the models it can hold whole
    busy: bool = False  # requests are running on it
    serving_since: float = 0.0  # when it began serving `model` (unix time)


@dataclass(frozen=True)
class FleetDemand:
    models: tuple[str, ...]  # every model the swarm may serve; the first is the primary
    pinned: frozenset[str] = frozenset()
    wanted: tuple[str, ...] = ()  # asked for while no node serves them, oldest first
    last_used: Mapping[str, float] = field(default_factory=dict)  # model -> unix time of its last request
    residency_s: float = 30.0
    now: float = 0.0

    @property
    def primary(self) -> str:
        return self.models[0]

    def eager(self) -> list[str]:
        """Models loaded without being asked for: the pinned ones, then the primary."""
        return [m for m in self.models if m in self.pinned] + (
            [self.primary] if self.primary not in self.pinned else []
        )


def model_for_offer(node: FleetNode, nodes: Sequence[FleetNode], demand: FleetDemand) -> str:
    """The model a node asking for work should serve (`nodes`: the others, with what they serve)."""
    held = Counter(n.model for n in nodes if n.node_id != node.node_id and n.model)
    for model in [*demand.wanted, *demand.eager()]:
        if model in node.fits and not held[model]:
            return model
    if node.model in demand.models:  # serving already: no reason to move it
        return node.model
    fitting = [m for m in demand.models if m in node.fits and (held[m] or m in demand.eager())]
    if not fitting:
        return demand.primary  # its planner may still give the node a stage of a pipeline
    # A spare node strengthens the busiest loaded model: the one used last, the primary on a tie.
    return max(fitting, key=lambda m: (demand.last_used.get(m, 0.0), m == demand.primary))


def evictions(nodes: Sequence[FleetNode], demand: FleetDemand) -> dict[NodeId, str]:
    """Nodes to move to a wanted model that no node serves: node id -> the model it moves to."""
    moves: dict[NodeId, str] = {}
    held = Counter(n.model for n in nodes if n.model)
    for model in demand.wanted:
        if held[model]:
            continue
        candidates = [n for n in nodes if n.node_id not in moves and _may_give_up(n, model, held, demand)]
        if not candidates:
            continue
        # From a model with nodes to spare first, then the least recently used.
        victim = min(candidates, key=lambda n: (held[n.model] == 1, demand.last_used.get(n.model, 0.0), n.node_id))
        moves[victim.node_id] = model
        held[victim.model] -= 1
        held[model] += 1
    return moves


def _may_give_up(node: FleetNode, model: str, held: Counter[str], demand: FleetDemand) -> bool:
    if model not in node.fits or not node.model or node.model == model or node.busy:
        return False
    if demand.now - node.serving_since < demand.residency_s:
        return False
    return held[node.model] > 1 or node.model not in demand.pinned


def model_too_large(model: str, nodes: Sequence[FleetNode]) -> bool:
    """Whether no node that offered can hold the model whole (False while none has offered)."""
    return bool(nodes) and not any(model in n.fits for n in nodes)
