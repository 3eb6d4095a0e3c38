"""ModelFleet: several models on one swarm's `--auto` nodes, each node serving one of them at a time.

Each model has its own StageAssigner (its plan of replicas and stages over the nodes given to it);
the fleet decides which model a node serves (model_choice) and moves nodes between models when a
request asks for a model no node serves. A node being moved learns it from its next heartbeat
(`reassign`), hands its requests on as a drained worker does, and asks Assign again, which gives
it its new model. With one model the fleet is exactly that model's StageAssigner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from swarm.coordinator.planning.assigner import PlanState, StageAssigner
from swarm.coordinator.planning.model_choice import FleetDemand, FleetNode, evictions, model_for_offer, model_too_large
from swarm.shared.plan_messages import AssignmentReply, NodeOffer, StageMeasurement, planned_node
from swarm.shared.types import NodeId, WorkerId, WorkerView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetModel:
    """A model of the fleet as `swarm models` shows it."""

    name: str
    state: str  # "loaded" (a worker serves it), "loading" (nodes are given it), "available"
    pinned: bool
    workers: tuple[str, ...]  # the workers serving it


class ModelFleet:
    def __init__(
        self,
        assigners: Iterable[StageAssigner],
        pinned: Iterable[str] = (),
        residency_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._assigners = {a.model: a for a in assigners}
        if not self._assigners:
            raise ValueError("a fleet needs at least one model")
        self._pinned = frozenset(pinned)
        self._residency_s = residency_s
        self._clock = clock
        self._offers: dict[NodeId, NodeOffer] = {}
        self._model_of: dict[NodeId, str] = {}
        self._since: dict[NodeId, float] = {}
        self._moving: dict[NodeId, str] = {}  # node -> the model it was told to move to
        self._wanted: dict[str, float] = {}  # model -> when a request first asked for it in vain
        self._last_used: dict[str, float] = {}
        self._busy: set[NodeId] = set()

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._assigners)

    def assigner(self, model: str) -> StageAssigner | None:
        return self._assigners.get(model)

    # ---------------------------------------------------------------- requests

    def used(self, model: str) -> None:
        """A request asked for the model: it is the most recently used."""
        self._last_used[model] = self._clock()

    def want(self, model: str) -> None:
        """A request waits for the model and no worker serves it."""
        self._wanted.setdefault(model, self._clock())

    def merge_demand(self, wanted: Mapping[str, float], last_used: Mapping[str, float]) -> None:
        """Takes in every coordinator's demand (times on this fleet's clock's scale, unix seconds).

        `wanted` replaces this fleet's wants: it is the shared record, which every want is written to
        before it reaches a fleet and from which a want met anywhere is deleted. A model's last use is
        the latest any coordinator saw."""
        self._wanted = {model: at for model, at in wanted.items() if model in self._assigners}
        for model, at in last_used.items():
            if model in self._assigners and at > self._last_used.get(model, 0.0):
                self._last_used[model] = at

    def too_large(self, model: str) -> bool:
        """Whether no node that offered so far could hold the model whole."""
        return model_too_large(model, self._nodes())

    # ---------------------------------------------------------------- nodes

    async def assign(self, offer: NodeOffer) -> AssignmentReply:
        node = offer.node_id
        self._offers[node] = offer
        target = self._moving.pop(node, None) or model_for_offer(self._node(node), self._nodes(), self._demand())
        previous = self._model_of.get(node)
        if previous is not None and previous != target:
            self._assigners[previous].release(node)
            log.info("node %s moves from %s to %s", node, previous, target)
        if previous != target:
            self._since[node] = self._clock()
        self._model_of[node] = target
        self._wanted.pop(target, None)
        return await self._assigners[target].assign(offer)

    def must_reassign(self, worker_id: WorkerId) -> bool:
        node = planned_node(worker_id)
        if node in self._moving:
            return True
        model = self._model_of.get(node)
        return model is not None and self._assigners[model].must_reassign(worker_id)

    def rebalance(self, views: Iterable[WorkerView]) -> list[str]:
        """Moves nodes to wanted models no node serves; forgets wants a worker now meets, and returns them."""
        views = list(views)
        self._busy = {planned_node(v.info.worker_id) for v in views if v.inflight or v.load.slots_busy}
        served = {v.info.model for v in views if v.up and v.info.takes_requests}
        met = [m for m in self._wanted if m in served]
        for model in met:
            del self._wanted[model]
        if not self._wanted:
            return met
        for node, model in evictions(self._nodes(), self._demand()).items():
            if self._moving.get(node) != model:
                log.info("model %s is asked for: node %s leaves %s for it", model, node, self._model_of.get(node))
                self._moving[node] = model
        return met

    def prune(self, dead: Iterable[WorkerId], registered: Iterable[WorkerId]) -> bool:
        dead, registered = list(dead), list(registered)
        changed = False
        for assigner in self._assigners.values():
            changed |= assigner.prune(dead, registered)
        for node in {planned_node(w) for w in dead}:
            self._offers.pop(node, None)
            self._model_of.pop(node, None)
            self._since.pop(node, None)
            self._moving.pop(node, None)
        return changed

    def observe(self, worker_id: WorkerId, measured: StageMeasurement) -> bool:
        model = self._model_of.get(planned_node(worker_id))
        return model is not None and self._assigners[model].observe(worker_id, measured)

    # ---------------------------------------------------------------- state

    def snapshot(self) -> dict[str, PlanState]:
        return {model: assigner.snapshot() for model, assigner in self._assigners.items()}

    def restore(self, states: Mapping[str, PlanState]) -> None:
        """Takes over a previous coordinator's plans; each node serves what its model's plan gave it."""
        now = self._clock()
        for model, state in states.items():
            if model not in self._assigners:
                continue
            self._assigners[model].restore(state)
            for offer, _asked in state.offers:
                self._offers[offer.node_id] = offer
            for node, _part in state.serving:
                self._model_of[node] = model
                self._since.setdefault(node, now)

    def describe(self, views: Iterable[WorkerView]) -> list[FleetModel]:
        views = list(views)
        shown = []
        for model in self._assigners:
            workers = tuple(sorted(v.info.worker_id for v in views if v.up and v.info.model == model))
            given = any(m == model for m in [*self._model_of.values(), *self._moving.values()])
            state = "loaded" if workers else "loading" if given or model in self._wanted else "available"
            shown.append(FleetModel(model, state, model in self._pinned, workers))
        return shown

    def _node(self, node: NodeId) -> FleetNode:
        offer = self._offers[node]
        fits = frozenset(m for m, a in self._assigners.items() if a.holds_whole(offer))
        return FleetNode(node, self._model_of.get(node, ""), fits, node in self._busy, self._since.get(node, 0.0))

    def _nodes(self) -> list[FleetNode]:
        return [self._node(node) for node in self._offers]

    def _demand(self) -> FleetDemand:
        wanted = tuple(sorted(self._wanted, key=self._wanted.__getitem__))
        return FleetDemand(self.models, self._pinned, wanted, dict(self._last_used), self._residency_s, self._clock())
