"""Pure pipeline planning: split a model's layers into contiguous stages over nodes, and place replicas."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

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


def _bytes_on(shape: ModelShape, node: NodeCapacity, start: int, end: int) -> int:
    return stage_bytes(shape, start, end, node.kv_tokens)


def holds_a_layer(shape: ModelShape, node: NodeCapacity) -> bool:
    """Whether the node can serve any stage at all: some single layer with its KV cache fits it."""
    return any(_bytes_on(shape, node, i, i + 1) <= node.free_bytes for i in range(shape.n_layers))


def _usable(nodes: Sequence[NodeCapacity]) -> list[NodeCapacity]:
    """Nodes able to serve anything, in a canonical order (fastest, then largest, then by id)."""
    ids = [node.node_id for node in nodes]
    if len(set(ids)) != len(ids):
        raise PlanError(f"node ids must be unique: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    return sorted(
        (n for n in nodes if n.speed > 0 and n.free_bytes > 0), key=lambda n: (-n.speed, -n.free_bytes, n.node_id)
    )


def _fits(shape: ModelShape, node: NodeCapacity, start: int, end: int, limit: float) -> bool:
    size = _bytes_on(shape, node, start, end)
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
    return lo


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _exact(shape: ModelShape, nodes: Sequence[NodeCapacity], k: int, limit: float) -> _Placement | None:
    """k stages within limit over every subset and order of the nodes: a DP over node sets of the layer
    boundaries their stages can end at (a bit mask of positions), then a walk back for one placement."""
    n = shape.n_layers
    far = [[_reach(shape, node, start, n, limit) for start in range(n)] for node in nodes]
    ends = {0: 1}  # node set (bit mask) -> the boundaries its stages, in some order, can cover layers up to
    for mask in range(1, 1 << len(nodes)):
        used = mask.bit_count()
        if used > k:
            continue
        last = n - (k - used)  # leave a layer for each stage still to come
        for j in _bits(mask):
            for start in _bits(ends.get(mask & ~(1 << j), 0)):
                end = min(far[j][start], last)
                ends[mask] = ends.get(mask, 0) | ((1 << (end + 1)) - (1 << (start + 1)) if end > start else 0)
        if used == k and ends.get(mask, 0) >> n & 1:
            stages: list[tuple[NodeCapacity, int, int]] = []
            end = n
            while mask:
                j, start = next(
                    (j, start)
                    for j in reversed(_bits(mask))
                    for start in _bits(ends.get(mask & ~(1 << j), 0))
                    if start < end and _fits(shape, nodes[j], start, end, limit)
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
        if nodes and all(_bytes_on(shape, node, start, end) > node.free_bytes for node in nodes):
            least = min(_bytes_on(shape, node, start, end) for node in nodes)
            return (
                f"an end stage of model {name} needs at least {_size(least)} (a layer with the {extra}, {kv}) "
                f"but the largest free node holds {_size(largest)}"
            )
    into = f"{stages} stages" if stages else "stages on these nodes"
    return (
        f"model {name} needs at least {_size(total)} ({kv}) and the free nodes hold {_size(held)}, but its "
        f"layers do not fit {into} (the largest free node holds {_size(largest)})"
    )


def _split(shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None) -> _Placement:
    n = shape.n_layers
    if stages is not None and not 1 <= stages <= n:
        raise PlanError(f"model {shape.name} has {n} layers, so it cannot run in {stages} stages")
    if stages is not None and stages > len(nodes):
        raise PlanError(f"model {shape.name} asks for {stages} stages but only {len(nodes)} free nodes are left")
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
            if (b := _bytes_on(shape, node, s, e)) <= node.free_bytes
        }
    )
    lo, hi = 0, len(times) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _search(shape, nodes, k, times[mid]) is not None else (mid + 1, hi)
    placement = _search(shape, nodes, k, times[lo])
    assert placement is not None  # times[-1] admits every stage that fits memory, as math.inf did
    return placement


def split_layers(
    shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None = None
) -> tuple[StageAssignment, ...]:
    """One pipeline: contiguous layer ranges on some of the nodes, each fitting its node's memory, with the
    slowest stage (stage bytes / node speed: seconds per token) as fast as possible.

    With stages, exactly that many; otherwise the fewest nodes that hold the model. Raises PlanError.
    """
    placement = _split(shape, _usable(nodes), stages)
    return tuple(StageAssignment(start, end, (node.node_id,)) for node, start, end in placement)


def _rate(shape: ModelShape, node: NodeCapacity, start: int, end: int) -> float:
    """Tokens per second a node serves layers [start, end) at."""
    return node.speed / _bytes_on(shape, node, start, end)


def _stage_time(shape: ModelShape, stage: StageAssignment, by_id: Mapping[NodeId, NodeCapacity]) -> float:
    """Seconds per token of a stage; replicas share its work, so their rates add up."""
    return 1 / sum(_rate(shape, by_id[i], stage.layer_start, stage.layer_end) for i in stage.node_ids)


def plan_throughput(shape: ModelShape, plan: ModelPlan, nodes: Sequence[NodeCapacity]) -> float:
    """Tokens per second the plan serves with every replica and pipeline busy (a pipeline runs at its bottleneck)."""
    by_id = {node.node_id: node for node in nodes}
    whole = sum(_rate(shape, by_id[i], 0, shape.n_layers) for i in plan.whole_replicas)
    return whole + sum(1 / max(_stage_time(shape, stage, by_id) for stage in pipe) for pipe in plan.pipelines)


def _complete(
    shape: ModelShape,
    whole: Sequence[NodeId],
    pipelines: Sequence[tuple[StageAssignment, ...]],
    nodes: Sequence[NodeCapacity],
    stages: int | None,
) -> ModelPlan:
    """Give the nodes not yet in whole or pipelines work: whole replicas (unless stages), pipelines, stage replicas."""
    taken = {*whole, *(i for pipe in pipelines for stage in pipe for i in stage.node_ids)}
    free = [node for node in nodes if node.node_id not in taken]
    by_id = {node.node_id: node for node in nodes}
    whole_ids, pipes = list(whole), [list(pipe) for pipe in pipelines]
    if stages is None:
        whole_ids += [node.node_id for node in free if node.free_bytes >= _bytes_on(shape, node, 0, shape.n_layers)]
        free = [node for node in free if node.node_id not in whole_ids]
    error = PlanError(f"model {shape.name} has no free node to run on")
    while free:
        try:
            new = split_layers(shape, free, stages)
        except PlanError as exc:
            error = exc
            break
        pipes.append(list(new))
        free = [node for node in free if all(node.node_id not in stage.node_ids for stage in new)]
    for node in free:  # fastest first: each joins the slowest pipeline's bottleneck stage if it can hold it
        for pipe in sorted(pipes, key=lambda p: -max(_stage_time(shape, stage, by_id) for stage in p)):
            i = max(range(len(pipe)), key=lambda i: _stage_time(shape, pipe[i], by_id))
            if _bytes_on(shape, node, pipe[i].layer_start, pipe[i].layer_end) <= node.free_bytes:
                pipe[i] = replace(pipe[i], node_ids=(*pipe[i].node_ids, node.node_id))
                break
    if not whole_ids and not pipes:
        raise error
    return ModelPlan(shape.name, tuple(whole_ids), tuple(tuple(pipe) for pipe in pipes))


def plan_model(shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None = None) -> ModelPlan:
    """Serve a model with the nodes: those that hold it whole are replicas, the rest form as many pipelines
    as they can, and leftovers replicate bottleneck stages. With stages, only pipelines of that many stages.

    Raises PlanError when nothing can serve the model.
    """
    return _complete(shape, (), (), _usable(nodes), stages)


def replan(
    previous: ModelPlan, shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None = None
) -> ModelPlan:
    """Re-plan after nodes joined or left, moving layers only when that pays.

    The previous plan is cut down to the nodes still present that still hold their part (a
    pipeline left without a node for some stage dissolves), then completed with the free
    nodes as plan_model would. That kept plan wins when it serves at least the throughput
    of a fresh plan_model (plan_throughput); otherwise the fresh plan is returned.
    """
    usable = _usable(nodes)
    fresh = plan_model(shape, usable, stages)
    if previous.model != shape.name:
        return fresh
    by_id = {node.node_id: node for node in usable}

    def kept(ids: tuple[NodeId, ...], start: int, end: int) -> tuple[NodeId, ...]:
        return tuple(i for i in ids if i in by_id and by_id[i].free_bytes >= _bytes_on(shape, by_id[i], start, end))

    n = shape.n_layers
    whole = kept(previous.whole_replicas, 0, n) if stages is None else ()
    pipes: list[tuple[StageAssignment, ...]] = []
    for pipe in previous.pipelines:
        bounds = [0, *(stage.layer_end for stage in pipe)]
        if [s.layer_start for s in pipe] != bounds[:-1] or bounds[-1] != n or sorted(set(bounds)) != bounds:
            continue  # not a pipeline of this shape
        cut = tuple(replace(s, node_ids=kept(s.node_ids, s.layer_start, s.layer_end)) for s in pipe)
        if all(stage.node_ids for stage in cut) and (stages is None or len(cut) == stages):
            pipes.append(cut)
    plan = _complete(shape, whole, pipes, usable, stages)
    return plan if plan_throughput(shape, plan, usable) >= plan_throughput(shape, fresh, usable) * (1 - 1e-9) else fresh
