"""StageAssigner: turns the workers' offers (memory, speed) into a plan and tells each worker what to serve.

Workers that join with `--auto` ask Assign for work. The assigner keeps every live offer,
re-plans when one arrives or a node goes away (keeping the previous plan where it is as fast),
cuts the model into the stage files of each pipeline layout (cached on disk, served by
ModelFiles; a whole replica gets the model file itself, uncut), and answers: a whole replica,
a stage of a pipeline with the address of the next stage, or "wait" with the reason. Stages
report their measured speed and links with their heartbeats: once per round of reports the
plan is re-cut if the measurements call for it, with hysteresis (recut.py). A worker whose
part changed is told by its next heartbeat to leave and ask again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from swarm.coordinator.planning.link_costs import Measurements
from swarm.coordinator.planning.measurement_book import MeasurementBook
from swarm.coordinator.planning.model_plan import feeds, plan_model, replan
from swarm.coordinator.planning.planner import ModelPlan, NodeCapacity, PlanError, bytes_on, holds_a_layer
from swarm.coordinator.planning.recut import RecutWatch, propose_recut
from swarm.gguf_files.model_shape import ModelShape, model_shape
from swarm.gguf_files.stage_files import MANIFEST_NAME, StageManifest, link_whole_model, split_model
from swarm.shared.plan_messages import (
    AssignmentReply,
    Layout,
    NodeAssignment,
    NodeOffer,
    StageMeasurement,
    planned_node,
)
from swarm.shared.types import NodeId, WorkerId

log = logging.getLogger(__name__)

# An offer from a node that never joined as a worker (it died while loading) is dropped after this long.
UNJOINED_OFFER_TTL_S = 60.0


@dataclass(frozen=True)
class PlanState:
    """Everything the assigner knows, so a restarted coordinator carries on with the same plan."""

    offers: tuple[tuple[NodeOffer, float], ...] = ()  # with the unix time each node last asked
    serving: tuple[tuple[NodeId, NodeAssignment], ...] = ()
    plan: ModelPlan | None = None


def node_assignments(
    plan: ModelPlan, n_layers: int, addresses: Mapping[NodeId, str], measured: Measurements | None = None
) -> dict[NodeId, NodeAssignment]:
    """Every node's part in plan. Replicas of a stage feed replicas of the next stage evenly, each over its
    fastest measured link where that leaves the load even (round-robin when nothing was measured)."""
    parts = {node: NodeAssignment(((0, n_layers),), 0, "") for node in plan.whole_replicas}
    for pipeline in plan.pipelines:
        layout = tuple((stage.layer_start, stage.layer_end) for stage in pipeline)
        for index, stage in enumerate(pipeline):
            following = pipeline[index + 1].node_ids if index + 1 < len(pipeline) else ()
            fed = feeds(stage.node_ids, following, measured) if following else {}
            for node in stage.node_ids:
                parts[node] = NodeAssignment(layout, index, addresses[fed[node]] if fed else "")
    return parts


def split_key(model: str, layout: Layout) -> str:
    """The ModelFiles name of a layout's stage files, e.g. gemma@0-9_9-18."""
    return f"{model}@" + "_".join(f"{start}-{end}" for start, end in layout)


class StageAssigner:
    def __init__(self, model_path: Path, model_name: str, library_root: Path, stages: int | None = None) -> None:
        self.model = model_name
        self._path = model_path
        self._root = library_root
        self._stages = stages
        self._shape = model_shape(model_path, model_name)
        self._offers: dict[NodeId, tuple[NodeOffer, float]] = {}  # node id -> offer, unix time it last asked
        self._plan: ModelPlan | None = None
        self._why = "no worker has offered to serve yet"
        self._parts: dict[NodeId, NodeAssignment] = {}  # the plan's part for each node
        self._serving: dict[NodeId, NodeAssignment] = {}  # what each node was told to serve
        # One cut per layout, shared by every node that asks for it: a node whose call timed out while its
        # cut ran must find that cut on asking again, not start a second one beside it (each then took longer
        # than the next call's deadline, and Gemma's one-stage cut was started every 10 s for two minutes).
        self._cuts: dict[str, asyncio.Task[StageManifest]] = {}
        self._book = MeasurementBook(self._shape)
        self._watch = RecutWatch()

    @property
    def plan(self) -> ModelPlan | None:
        return self._plan

    @property
    def model_path(self) -> Path:
        """The whole model's file, as the coordinator was given it."""
        return self._path

    @property
    def shape(self) -> ModelShape:
        return self._shape

    def snapshot(self) -> PlanState:
        return PlanState(tuple(self._offers.values()), tuple(self._serving.items()), self._plan)

    def restore(self, state: PlanState) -> None:
        """Takes over a previous coordinator's plan: the nodes serving it keep serving it."""
        self._offers = {offer.node_id: (offer, asked) for offer, asked in state.offers}
        self._serving = dict(state.serving)
        self._plan = state.plan
        self._replan()
        log.info("took over the plan for %s with %d nodes", self.model, len(self._offers))

    async def assign(self, offer: NodeOffer) -> AssignmentReply:
        self._offers[offer.node_id] = (offer, time.time())
        self._serving.pop(offer.node_id, None)  # asking again: whatever it served is over
        self._replan()
        part = self._parts.get(offer.node_id)
        if part is None:
            return AssignmentReply(self.model, message=self._why_idle(offer))
        split = split_key(self.model, part.layout)
        await self._prepare(split, part.layout)
        self._serving[offer.node_id] = part
        return AssignmentReply(self.model, part, split)

    def _why_idle(self, offer: NodeOffer) -> str:
        if not holds_a_layer(self._shape, _capacity(offer)):
            return (
                f"{offer.free_bytes / 1e9:.2f} GB cannot hold one layer of {self.model} with a KV cache of "
                f"{offer.kv_tokens} tokens (--slots {offer.slots} x --context {offer.context_length}): "
                "offer more --memory, fewer --slots or a shorter --context"
            )
        return self._why if self._plan is None else "the plan needs no more nodes; waiting as a spare"

    def must_reassign(self, worker_id: WorkerId) -> bool:
        """Whether a worker serves a part the current plan no longer gives its node."""
        node = planned_node(worker_id)
        serving = self._serving.get(node)
        return serving is not None and self._parts.get(node) != serving

    def prune(self, dead: Iterable[WorkerId], registered: Iterable[WorkerId]) -> bool:
        """Forgets nodes whose workers died, or that asked long ago and never joined; re-plans if any went
        (returns True)."""
        dead_ids, known = {planned_node(w) for w in dead}, {planned_node(w) for w in registered}
        now = time.time()
        gone = [
            node
            for node, (_, asked) in self._offers.items()
            if node in dead_ids or (node not in known and now - asked > UNJOINED_OFFER_TTL_S)
        ]
        for node in gone:
            log.info("node %s is gone; re-planning %s without it", node, self.model)
            del self._offers[node]
            self._serving.pop(node, None)
            self._book.forget(node)
        if gone:
            self._replan()
        return bool(gone)

    def release(self, node: NodeId) -> None:
        """Forgets a node that goes to serve another model, and re-plans without it."""
        if self._offers.pop(node, None) is not None:
            self._serving.pop(node, None)
            self._book.forget(node)
            self._replan()

    def holds_whole(self, offer: NodeOffer) -> bool:
        """Whether the node can serve the whole model, with its KV cache."""
        return bytes_on(self._shape, _capacity(offer), 0, self._shape.n_layers) <= offer.free_bytes

    def observe(self, worker_id: WorkerId, measured: StageMeasurement) -> bool:
        """Takes a serving stage's measurements; re-cuts the plan when a closed round of them calls for it with
        hysteresis (returns True: the moved workers learn it from their next heartbeat)."""
        node = planned_node(worker_id)
        part = self._serving.get(node)
        if part is None or self._plan is None:
            return False
        node_at = {offer.address: node for node, (offer, _) in self._offers.items()}
        self._book.record(node, part, measured, node_at)
        measurements = self._book.measurements()
        if measurements is None or not self._book.round_closed(self._plan):
            return False
        nodes = [_capacity(offer) for offer, _ in self._offers.values()]
        offer = propose_recut(self._plan, self._shape, nodes, measurements, self._stages)
        moved = self._watch.observe(self._plan, offer)
        if moved is None:
            return False
        log.info("measured stage times drifted: re-cutting %s for %.2fx the throughput", self.model, offer.gain)
        self._adopt(moved)
        return True

    def _replan(self) -> None:
        nodes = [_capacity(offer) for offer, _ in self._offers.values()]
        measured = self._book.measurements()
        # One snapshot of noisy measurements moves no layers of a pipeline that still stands: only rounds do (observe).
        min_gain = math.inf if measured is not None else 0.0
        try:
            plan = (
                replan(self._plan, self._shape, nodes, self._stages, measured, min_gain)
                if self._plan is not None
                else plan_model(self._shape, nodes, self._stages, measured)
            )
        except PlanError as exc:
            if self._plan is not None:
                log.warning("cannot serve %s any more: %s", self.model, exc)
            self._plan, self._parts, self._why = None, {}, str(exc)
            return
        self._adopt(plan)

    def _adopt(self, plan: ModelPlan) -> None:
        if plan != self._plan:
            log.info("plan for %s: %s", self.model, describe_plan(plan))
            self._watch.restart()  # rounds proposing to move away from another plan count no more
        self._plan = plan
        addresses = {node: offer.address for node, (offer, _) in self._offers.items()}
        parts = node_assignments(plan, self._shape.n_layers, addresses, self._book.measurements())
        self._parts = {node: kept_feed(self._serving.get(node), part, parts, addresses) for node, part in parts.items()}

    async def _prepare(self, split: str, layout: Layout) -> None:
        """Cuts the layout's stage files from the model the first time (off the event loop); a caller that
        leaves (its call's deadline passed) leaves the cut running for the next."""
        folder = self._root / split
        if (folder / MANIFEST_NAME).is_file():
            return
        cut = self._cuts.get(split)
        if cut is None or cut.done():  # none yet, or one that ended without its manifest: it failed
            if layout == ((0, self._shape.n_layers),):  # the whole model is served as it is: nothing to cut
                log.info("serving %s whole from %s", self.model, self._path)
                cut = asyncio.create_task(asyncio.to_thread(link_whole_model, self._path, folder))
            else:
                log.info("cutting %s into %d stage file(s) for layout %s", self.model, len(layout), split)
                cut = asyncio.create_task(asyncio.to_thread(split_model, self._path, list(layout), folder))
            self._cuts[split] = cut
        await asyncio.shield(cut)


def kept_feed(
    serving: NodeAssignment | None,
    part: NodeAssignment,
    parts: Mapping[NodeId, NodeAssignment],
    addresses: Mapping[NodeId, str],
) -> NodeAssignment:
    """What a node serves now, if the plan gives it the same layers and the replica it feeds still serves the
    next stage: a better-paired replica is not worth a restart."""
    if serving is None or (serving.layout, serving.stage_index) != (part.layout, part.stage_index):
        return part
    following = {
        addresses[n] for n, p in parts.items() if (p.layout, p.stage_index) == (part.layout, part.stage_index + 1)
    }
    return serving if serving.next_stage in following else part


def _capacity(offer: NodeOffer) -> NodeCapacity:
    return NodeCapacity(offer.node_id, offer.free_bytes, offer.speed, offer.kv_tokens)


def describe_plan(plan: ModelPlan) -> str:
    whole = f"{len(plan.whole_replicas)} whole replica(s)"
    pipes = [
        " | ".join(f"L{s.layer_start}-{s.layer_end - 1} on {','.join(s.node_ids)}" for s in pipe)
        for pipe in plan.pipelines
    ]
    return "; ".join([whole, *pipes])
