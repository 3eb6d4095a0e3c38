"""MeasurementBook: the stages' reported timings turned into what the planner reads, and measurement rounds."""

from __future__ import annotations

from collections.abc import Mapping

from swarm.coordinator.planning.link_costs import Link, Measurements, cut_bytes, head_layers
from swarm.coordinator.planning.planner import ModelPlan
from swarm.gguf_files.model_shape import ModelShape
from swarm.shared.plan_messages import NodeAssignment, StageMeasurement
from swarm.shared.types import NodeId


class MeasurementBook:
    """The latest per-layer time of each node and link between nodes. A round closes once every node of the
    plan's pipelines has reported decoding since the round before: re-cuts are judged once per round."""

    def __init__(self, shape: ModelShape) -> None:
        self._shape = shape
        self._layer_seconds: dict[NodeId, float] = {}
        self._links: dict[tuple[NodeId, NodeId], Link] = {}
        self._fresh: set[NodeId] = set()

    def record(
        self, node: NodeId, part: NodeAssignment, measured: StageMeasurement, node_at: Mapping[str, NodeId]
    ) -> None:
        """A node's report while serving part; node_at names the node behind each serving address."""
        start, end = part.layout[part.stage_index]
        work = end - start + (head_layers(self._shape) if end == self._shape.n_layers else 0.0)
        if measured.decode_tokens > 0 and measured.decode_seconds_per_token > 0:
            self._layer_seconds[node] = measured.decode_seconds_per_token / work
            self._fresh.add(node)
        for link in measured.links:
            peer = node_at.get(link.peer)
            if peer is not None and peer != node and link.bytes_per_s > 0 and link.rtt_s >= 0:
                self._links[(node, peer)] = Link(link.rtt_s, link.bytes_per_s)

    def forget(self, node: NodeId) -> None:
        self._layer_seconds.pop(node, None)
        self._fresh.discard(node)
        self._links = {pair: link for pair, link in self._links.items() if node not in pair}

    def round_closed(self, plan: ModelPlan) -> bool:
        """Whether every pipeline node reported since the last closed round; closing starts the next one."""
        staged = {i for pipe in plan.pipelines for stage in pipe for i in stage.node_ids}
        if not staged or not staged <= self._fresh:
            return False
        self._fresh.clear()
        return True

    def measurements(self) -> Measurements | None:
        """What the planner reads; None before any node measured its speed."""
        if not self._layer_seconds:
            return None
        return Measurements(dict(self._layer_seconds), dict(self._links), cut_bytes(self._shape))
