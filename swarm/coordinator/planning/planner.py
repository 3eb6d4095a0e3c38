"""Pure pipeline planning: split a model's layers into contiguous stages over nodes, the slowest stage fastest."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from swarm.coordinator.planning.link_costs import Measurements, head_layers, layer_seconds
from swarm.coordinator.planning.link_planner import StageCosts, fastest_pipeline
from swarm.gguf_files.model_shape import ModelShape
from swarm.shared.types import NodeId

# Up to this many candidate nodes, which nodes serve a pipeline and in which order is searched exhaustively.
EXACT_NODES = 8


@dataclass(frozen=True)
class NodeCapacity:
    """A node as the planner sees it; free_bytes counts what this model may use, including what it holds now."""

    node_id: NodeId
    free_bytes: int  # memory for weights and KV cache
    speed: float  # bytes of weights processed per second; higher is faster
    kv_tokens: int  # KV cache tokens it allocates (its slots x context), held for every layer it serves


@dataclass(frozen=True)
class StageAssignment:
    """Layers [layer_start, layer_end) served by node_ids; more than one node: replicas of the stage."""

    layer_start: int
    layer_end: int
    node_ids: tuple[NodeId, ...]


@dataclass(frozen=True)
class ModelPlan:
    model: str
    whole_replicas: tuple[NodeId, ...]  # nodes serving the whole model
    pipelines: tuple[tuple[StageAssignment, ...], ...]  # each: stages in layer order, covering every layer once


class PlanError(ValueError):
    """No plan serves the model; the message says what is missing."""


_Placement = tuple[tuple[NodeCapacity, int, int], ...]  # (node, start, end) per stage, in layer order


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 10**9 else f"{n / 1e6:.1f} MB" if n >= 10**6 else f"{n} bytes"


def stage_bytes(shape: ModelShape, start: int, end: int, kv_tokens: int) -> int:
    """Memory a stage serving layers [start, end) needs on a node holding kv_tokens of KV cache: weights,
    KV cache, embeddings if first, head if last."""
    if not 0 <= start < end <= shape.n_layers:
        raise ValueError(f"layer range [{start}, {end}) is not inside the {shape.n_layers} layers of {shape.name}")
    total = sum(shape.layer_bytes[start:end]) + (end - start) * kv_tokens * shape.kv_bytes_per_token
    return total + (shape.input_bytes if start == 0 else 0) + (shape.output_bytes if end == shape.n_layers else 0)


def bytes_on(shape: ModelShape, node: NodeCapacity, start: int, end: int) -> int:
    return stage_bytes(shape, start, end, node.kv_tokens)


def holds_a_layer(shape: ModelShape, node: NodeCapacity) -> bool:
    """Whether the node can serve any stage at all: some single layer with its KV cache fits it."""
    return any(bytes_on(shape, node, i, i + 1) <= node.free_bytes for i in range(shape.n_layers))


def usable_nodes(nodes: Sequence[NodeCapacity]) -> list[NodeCapacity]:
    """Nodes able to serve anything, in a canonical order (fastest, then largest, then by id)."""
    ids = [node.node_id for node in nodes]
    if len(set(ids)) != len(ids):
        raise PlanError(f"node ids must be unique: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    return sorted(
        (n for n in nodes if n.speed > 0 and n.free_bytes > 0), key=lambda n: (-n.speed, -n.free_bytes, n.node_id)
    )


def _fits(shape: ModelShape, node: NodeCapacity, start: int, end: int, limit: float) -> bool:
    size = bytes_on(shape, node, start, end)
    return size <= node.free_bytes and size / node.speed <= limit


def _reach(shape: ModelShape, node: NodeCapacity, start: int, last: int, limit: float) -> int:
    """The furthest end <= last of a stage from start that node holds within limit seconds per token; start if none."""
    lo, hi = start, last  # stage bytes grow with end, so fitting is a prefix of the ends: binary search
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(shape, node, start, mid, limit):
            lo = mid
        else:
            hi = mid - 1
    return lo if shape.loadable(start, lo) else start  # a shorter stage holds a subset of its layers: none loads


def _first_loadable_end(shape: ModelShape, start: int) -> int:
    """The shortest stage from start that llama.cpp loads ends here (n + 1: none does); every longer one loads."""
    return next((end for end in range(start + 1, shape.n_layers + 1) if shape.loadable(start, end)), shape.n_layers + 1)


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _exact(shape: ModelShape, nodes: Sequence[NodeCapacity], k: int, limit: float) -> _Placement | None:
    """k stages within limit over every subset and order of the nodes: a DP over node sets of the layer
    boundaries their stages can end at (a bit mask of positions), then a walk back for one placement."""
    n = shape.n_layers
    far = [[_reach(shape, node, start, n, limit) for start in range(n)] for node in nodes]
    shortest = [_first_loadable_end(shape, start) - 1 for start in range(n)]  # ends above this one load
    ends = {0: 1}  # node set (bit mask) -> the boundaries its stages, in some order, can cover layers up to
    for mask in range(1, 1 << len(nodes)):
        used = mask.bit_count()
        if used > k:
            continue
        last = n - (k - used)  # leave a layer for each stage still to come
        for j in _bits(mask):
            for start in _bits(ends.get(mask & ~(1 << j), 0)):
                end, low = min(far[j][start], last), max(start, shortest[start])
                ends[mask] = ends.get(mask, 0) | ((1 << (end + 1)) - (1 << (low + 1)) if end > low else 0)
        if used == k and ends.get(mask, 0) >> n & 1:
            stages: list[tuple[NodeCapacity, int, int]] = []
            end = n
            while mask:
                j, start = next(
                    (j, start)
                    for j in reversed(_bits(mask))
                    for start in _bits(ends.get(mask & ~(1 << j), 0))
                    if start < end and _fits(shape, nodes[j], start, end, limit) and shape.loadable(start, end)
                )
                stages.append((nodes[j], start, end))
                mask, end = mask & ~(1 << j), start
            return tuple(reversed(stages))
    return None


def _greedy(shape: ModelShape, nodes: Sequence[NodeCapacity], k: int, limit: float) -> _Placement | None:
    """k stages within limit for many nodes: in a few node orders, each stage takes the longest prefix it can."""
    n = shape.n_layers
    biggest = max(nodes, key=lambda node: node.free_bytes)  # the embeddings favour a big first node
    orders = (
        list(nodes),
        sorted(nodes, key=lambda node: (-node.free_bytes, -node.speed, node.node_id)),
        [biggest, *(node for node in nodes if node is not biggest)],
    )
    for order in orders:
        stages: list[tuple[NodeCapacity, int, int]] = []
        while len(stages) < k:  # each stage goes to the first unused node able to take a layer (the last: all)
            start, last = (stages[-1][2] if stages else 0), n - (k - len(stages) - 1)
            ends = (
                (node, _reach(shape, node, start, last, limit)) for node in order if node not in (s[0] for s in stages)
            )
            pick = next(((node, end) for node, end in ends if end > start and (len(stages) < k - 1 or end == n)), None)
            if pick is None:
                break
            stages.append((pick[0], start, pick[1]))
        else:
            return tuple(stages)
    return None


def _search(shape: ModelShape, nodes: Sequence[NodeCapacity], k: int, limit: float) -> _Placement | None:
    return (_exact if len(nodes) <= EXACT_NODES else _greedy)(shape, nodes, k, limit)


def _why(shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None) -> str:
    n, name = shape.n_layers, shape.name
    # Every layer sits on some node with its KV cache: the smallest cache offered gives a lower bound.
    total = stage_bytes(shape, 0, n, min((node.kv_tokens for node in nodes), default=0))
    held = sum(node.free_bytes for node in nodes)
    largest = max((node.free_bytes for node in nodes), default=0)
    kv = "with each node's KV cache for its slots x context"
    if held < total:
        free = f"the {len(nodes)} free nodes hold {_size(held)}"
        return f"model {name} needs at least {_size(total)} across stages ({kv}) but {free}"
    for start, end, extra in ((0, 1, "embeddings"), (n - 1, n, "head")):
        if nodes and all(bytes_on(shape, node, start, end) > node.free_bytes for node in nodes):
            least = min(bytes_on(shape, node, start, end) for node in nodes)
            return (
                f"an end stage of model {name} needs at least {_size(least)} (a layer with the {extra}, {kv}) "
                f"but the largest free node holds {_size(largest)}"
            )
    into = f"{stages} stages" if stages else "stages on these nodes"
    return (
        f"model {name} needs at least {_size(total)} ({kv}) and the free nodes hold {_size(held)}, but its "
        f"layers do not fit {into} (the largest free node holds {_size(largest)})"
    )


def _check_stages(shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None) -> None:
    n = shape.n_layers
    if stages is not None and not 1 <= stages <= n:
        raise PlanError(f"model {shape.name} has {n} layers, so it cannot run in {stages} stages")
    if stages is not None and stages > len(nodes):
        raise PlanError(f"model {shape.name} asks for {stages} stages but only {len(nodes)} free nodes are left")


def _split(shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None) -> _Placement:
    n = shape.n_layers
    _check_stages(shape, nodes, stages)
    counts = [stages] if stages is not None else range(1, min(n, len(nodes)) + 1)
    k = next((c for c in counts if _search(shape, nodes, c, math.inf) is not None), None)
    if k is None:
        raise PlanError(_why(shape, nodes, stages))
    # The bottleneck is some stage's time on some node: binary search the smallest such time that is feasible.
    times = sorted(
        {
            b / node.speed
            for node in nodes
            for s in range(n)
            for e in range(s + 1, n + 1)
            if (b := bytes_on(shape, node, s, e)) <= node.free_bytes
        }
    )
    lo, hi = 0, len(times) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _search(shape, nodes, k, times[mid]) is not None else (mid + 1, hi)
    placement = _search(shape, nodes, k, times[lo])
    assert placement is not None  # times[-1] admits every stage that fits memory, as math.inf did
    return placement


def _costs(shape: ModelShape, nodes: Sequence[NodeCapacity], measured: Measurements) -> StageCosts:
    return StageCosts(
        shape.n_layers,
        [layer_seconds(shape, measured, node.node_id, node.speed) for node in nodes],
        head_layers(shape),
        [[0.0 if a is b else measured.link_seconds(a.node_id, b.node_id) for b in nodes] for a in nodes],
        lambda i, start, end: bytes_on(shape, nodes[i], start, end) <= nodes[i].free_bytes,
        shape.loadable,
    )


def _measured_split(
    shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None, measured: Measurements
) -> _Placement:
    """The fewest stages (or exactly stages) that hold the model, among the EXACT_NODES fastest nodes, with
    the slowest stage including its outgoing link as fast as possible."""
    _check_stages(shape, nodes, stages)
    fastest = sorted(
        nodes, key=lambda n: (layer_seconds(shape, measured, n.node_id, n.speed), -n.free_bytes, n.node_id)
    )
    candidates = fastest[:EXACT_NODES]
    costs = _costs(shape, candidates, measured)
    for k in [stages] if stages is not None else range(1, min(shape.n_layers, len(candidates)) + 1):
        placement = fastest_pipeline(costs, k)
        if placement is not None:
            return tuple((candidates[i], start, end) for i, start, end in placement)
    return _split(shape, nodes, stages)  # memory needs more than EXACT_NODES nodes: links go unweighed


def split_layers(
    shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None = None, measured: Measurements | None = None
) -> tuple[StageAssignment, ...]:
    """One pipeline: contiguous layer ranges on some of the nodes, each fitting its node's memory, with the
    slowest stage as fast as possible: stage bytes / node speed (seconds per token), or with measurements,
    its layers x the node's measured seconds per layer plus the link into the next stage.

    With stages, exactly that many; otherwise the fewest nodes that hold the model. Raises PlanError.
    """
    usable = usable_nodes(nodes)
    placement = _split(shape, usable, stages) if measured is None else _measured_split(shape, usable, stages, measured)
    return tuple(StageAssignment(start, end, (node.node_id,)) for node, start, end in placement)
