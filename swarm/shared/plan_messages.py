"""Plan messages between a worker that asks for work (--auto) and the coordinator's stage assigner."""

from __future__ import annotations

from dataclasses import dataclass

# How long a worker told to wait asks again.
RETRY_AFTER_S = 1.0

Layout = tuple[tuple[int, int], ...]  # a pipeline's layer ranges in order; ((0, n),) for a whole replica


@dataclass(frozen=True)
class NodeOffer:
    """What a worker offers when it asks for work."""

    node_id: str
    address: str  # where it will serve
    free_bytes: int
    speed: float


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
    file: str = ""
    message: str = ""
