"""Measured stage costs: a node's seconds per layer per token, and the link a stage's activations cross to the next."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from swarm.gguf_files.model_shape import ModelShape
from swarm.shared.types import NodeId

# Bytes per value of the hidden state crossing a cut: float32 unless the stages send bfloat16.
CUT_BYTES_PER_VALUE = 4
CUT_BYTES_PER_VALUE_BFLOAT16 = 2


@dataclass(frozen=True)
class Link:
    """A measured link from one node to another; the default costs nothing (unmeasured, or loopback)."""

    rtt_s: float = 0.0
    bytes_per_s: float = math.inf

    def seconds(self, payload_bytes: int) -> float:
        """One-way time of a payload: half the round trip plus its transfer."""
        return self.rtt_s / 2 + payload_bytes / self.bytes_per_s


@dataclass(frozen=True)
class Measurements:
    """What the workers measured, as the planner reads it. A node without a layer time is estimated from its
    offered speed. A pair without a link is taken as its reverse, else as the slowest link measured (free when
    none was): an unmeasured pair must not look better than the measured ones, or plans would chase it."""

    layer_seconds: Mapping[NodeId, float] = field(default_factory=dict)  # per layer per token, under load
    links: Mapping[tuple[NodeId, NodeId], Link] = field(default_factory=dict)  # (from, to)
    cut_bytes: int = 0  # bytes crossing a cut per token: hidden size x CUT_BYTES_PER_VALUE

    def link_seconds(self, source: NodeId, target: NodeId) -> float:
        link = self.links.get((source, target)) or self.links.get((target, source))
        if link is not None:
            return link.seconds(self.cut_bytes)
        return max((known.seconds(self.cut_bytes) for known in self.links.values()), default=0.0)


def cut_bytes(shape: ModelShape, bfloat16: bool = False) -> int:
    """Bytes of one token's hidden state crossing a cut between stages."""
    return shape.hidden_size * (CUT_BYTES_PER_VALUE_BFLOAT16 if bfloat16 else CUT_BYTES_PER_VALUE)


def mean_layer_bytes(shape: ModelShape) -> float:
    return sum(shape.layer_bytes) / shape.n_layers


def head_layers(shape: ModelShape) -> float:
    """The last stage's head (output projection) in layers' worth of work: it reads output_bytes per token.
    The first stage's embeddings cost a row lookup, nothing."""
    return shape.output_bytes / mean_layer_bytes(shape)


def layer_seconds(shape: ModelShape, measured: Measurements, node_id: NodeId, speed: float) -> float:
    """Seconds per layer per token on a node: measured under load if it was, else estimated from its speed."""
    seconds = measured.layer_seconds.get(node_id, 0.0)
    return seconds if seconds > 0 else mean_layer_bytes(shape) / speed


def compute_seconds(shape: ModelShape, per_layer_s: float, start: int, end: int) -> float:
    """Seconds per token a node spends on layers [start, end), with the head if the stage is last."""
    return per_layer_s * (end - start + (head_layers(shape) if end == shape.n_layers else 0.0))
