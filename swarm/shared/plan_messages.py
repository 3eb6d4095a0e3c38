"""Plan messages between a worker that asks for work (--auto) and the coordinator's stage assigner."""

from __future__ import annotations

from dataclasses import dataclass

from swarm.shared.types import NodeId, WorkerId

# How long a worker told to wait asks again.
RETRY_AFTER_S = 1.0

Layout = tuple[tuple[int, int], ...]  # a pipeline's layer ranges in order; ((0, n),) for a whole replica


@dataclass(frozen=True)
class NodeOffer:
    """What a worker offers when it asks for work."""

    node_id: NodeId
    address: str  # where it will serve
    free_bytes: int
    speed: float
    slots: int
    context_length: int  # tokens per slot

    @property
    def kv_tokens(self) -> int:
        """The KV cache it will allocate, in tokens: llama.cpp holds slots x context for every layer."""
        return self.slots * self.context_length


def offer_problem(offer: NodeOffer) -> str:
    """What is wrong with an offer, naming the field; empty when nothing is."""
    problems = (
        ("node_id", not offer.node_id, "must not be empty"),
        ("address", not offer.address, "must not be empty"),
        ("free_bytes", offer.free_bytes <= 0, "must be more than 0"),
        ("speed", offer.speed <= 0, "must be more than 0"),
        ("slots", offer.slots < 1, "must be at least 1"),
        ("context_length", offer.context_length < 1, "must be at least 1"),
    )
    return next((f"{name}: {rule} in an offer" for name, bad, rule in problems if bad), "")


def planned_node(worker_id: WorkerId) -> NodeId:
    """The node behind a worker serving a planned part: `swarm join --auto` joins under its node id."""
    return NodeId(worker_id)


@dataclass(frozen=True)
class NodeAssignment:
    """One node's part in a plan."""

    layout: Layout
    stage_index: int
    next_stage: str  # address of the next stage ("" for the last stage and whole replicas)


@dataclass(frozen=True)
class AssignmentReply:
    """Assign's answer: a part to serve (with the split and file to download), or a reason to wait."""

    model: str
    assignment: NodeAssignment | None = None
    split: str = ""  # the ModelFiles model key of the layout
    message: str = ""


@dataclass(frozen=True)
class LinkSample:
    """A stage's measured link to the stage it feeds."""

    peer: str  # host:port of the stage it feeds
    rtt_s: float  # round trip of an empty ping
    bytes_per_s: float  # of a large ping's payload


@dataclass(frozen=True)
class StageMeasurement:
    """What a pipeline stage measured since its last heartbeat: its decode speed under load and its link."""

    decode_seconds_per_token: float = 0.0  # its layers, and the head on a last stage
    decode_tokens: int = 0  # the tokens that average covers; 0: nothing decoded, no figure
    links: tuple[LinkSample, ...] = ()
