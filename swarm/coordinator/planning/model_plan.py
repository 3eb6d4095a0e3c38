"""Whole plans for a model: whole replicas, pipelines and stage replicas from the nodes, and re-plans that move
layers only when that pays."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

from swarm.coordinator.planning.link_costs import Measurements, compute_seconds, layer_seconds
from swarm.coordinator.planning.planner import (
    ModelPlan,
    NodeCapacity,
    PlanError,
    StageAssignment,
    bytes_on,
    split_layers,
    usable_nodes,
)
from swarm.gguf_files.model_shape import ModelShape
from swarm.shared.types import NodeId


def _rate(shape: ModelShape, node: NodeCapacity, start: int, end: int, measured: Measurements | None) -> float:
    """Tokens per second a node computes layers [start, end) at."""
    if measured is None:
        return node.speed / bytes_on(shape, node, start, end)
    return 1 / compute_seconds(shape, layer_seconds(shape, measured, node.node_id, node.speed), start, end)


def feeds(stage: Sequence[NodeId], following: Sequence[NodeId], measured: Measurements | None) -> dict[NodeId, NodeId]:
    """Which replica of the next stage each replica of a stage feeds: the least fed so far, then the one behind
    the fastest link, then the first (round-robin when nothing was measured)."""
    fed = dict.fromkeys(following, 0)
    chosen = {}
    for node in stage:
        links = {t: measured.link_seconds(node, t) if measured is not None else 0.0 for t in following}
        target = min(following, key=lambda t: (fed[t], links[t]))
        fed[target] += 1
        chosen[node] = target
    return chosen


def _stage_time(
    shape: ModelShape,
    pipe: Sequence[StageAssignment],
    index: int,
    by_id: Mapping[NodeId, NodeCapacity],
    measured: Measurements | None,
) -> float:
    """Seconds per token of a stage; replicas share its work, so their rates add up. With measurements, each
    replica's time includes the link to the next-stage replica it feeds (see feeds)."""
    stage = pipe[index]
    if measured is None:
        return 1 / sum(_rate(shape, by_id[i], stage.layer_start, stage.layer_end, None) for i in stage.node_ids)
    fed = feeds(stage.node_ids, pipe[index + 1].node_ids, measured) if index + 1 < len(pipe) else {}
    rates = (
        1
        / (
            1 / _rate(shape, by_id[i], stage.layer_start, stage.layer_end, measured)
            + (measured.link_seconds(i, fed[i]) if fed else 0.0)
        )
        for i in stage.node_ids
    )
    return 1 / sum(rates)


def _pipeline_time(
    shape: ModelShape,
    pipe: Sequence[StageAssignment],
    by_id: Mapping[NodeId, NodeCapacity],
    measured: Measurements | None,
) -> float:
    """Seconds per token of a pipeline's slowest stage: with groups in flight, it runs at that pace."""
    return max(_stage_time(shape, pipe, i, by_id, measured) for i in range(len(pipe)))


def plan_throughput(
    shape: ModelShape, plan: ModelPlan, nodes: Sequence[NodeCapacity], measured: Measurements | None = None
) -> float:
    """Tokens per second the plan serves with every replica and pipeline busy (a pipeline runs at its bottleneck)."""
    by_id = {node.node_id: node for node in nodes}
    whole = sum(_rate(shape, by_id[i], 0, shape.n_layers, measured) for i in plan.whole_replicas)
    return whole + sum(1 / _pipeline_time(shape, pipe, by_id, measured) for pipe in plan.pipelines)


def _with_leftover(
    shape: ModelShape,
    pipes: list[list[StageAssignment]],
    node: NodeCapacity,
    by_id: Mapping[NodeId, NodeCapacity],
    measured: Measurements | None,
    lengthen: bool,
) -> None:
    """A node no pipeline needs joins the slowest pipeline's bottleneck stage as a replica if it holds it; with
    lengthen, that pipeline may instead be cut once more over its nodes and this one, when that serves more
    (it does on fast links; on slow ones the extra cut costs more than it saves)."""
    for p in sorted(range(len(pipes)), key=lambda p: -_pipeline_time(shape, pipes[p], by_id, measured)):
        pipe = pipes[p]
        options = []
        i = max(range(len(pipe)), key=lambda i: _stage_time(shape, pipe, i, by_id, measured))
        if bytes_on(shape, node, pipe[i].layer_start, pipe[i].layer_end) <= node.free_bytes:
            options.append([*pipe[:i], replace(pipe[i], node_ids=(*pipe[i].node_ids, node.node_id)), *pipe[i + 1 :]])
        if lengthen and measured is not None and all(len(stage.node_ids) == 1 for stage in pipe):
            ids = {stage.node_ids[0] for stage in pipe}
            with contextlib.suppress(PlanError):  # more stages than layers, or the node holds no part of them
                longer = [n for n in by_id.values() if n.node_id in ids or n is node]
                options.append(list(split_layers(shape, longer, len(pipe) + 1, measured)))
        if options:  # the replica first: on a tie it wins, being the fewer cuts
            pipes[p] = min(options, key=lambda option: _pipeline_time(shape, option, by_id, measured))
            return


def _complete(
    shape: ModelShape,
    whole: Sequence[NodeId],
    pipelines: Sequence[tuple[StageAssignment, ...]],
    nodes: Sequence[NodeCapacity],
    stages: int | None,
    measured: Measurements | None,
) -> ModelPlan:
    """Give the nodes not yet in whole or pipelines work: whole replicas (unless stages), pipelines, stage replicas
    (or, with measurements and no stage count, a further cut where that serves more)."""
    taken = {*whole, *(i for pipe in pipelines for stage in pipe for i in stage.node_ids)}
    free = [node for node in nodes if node.node_id not in taken]
    by_id = {node.node_id: node for node in nodes}
    whole_ids, pipes = list(whole), [list(pipe) for pipe in pipelines]
    if stages is None:
        whole_ids += [node.node_id for node in free if node.free_bytes >= bytes_on(shape, node, 0, shape.n_layers)]
        free = [node for node in free if node.node_id not in whole_ids]
    error = PlanError(f"model {shape.name} has no free node to run on")
    while free:
        try:
            new = split_layers(shape, free, stages, measured)
        except PlanError as exc:
            error = exc
            break
        pipes.append(list(new))
        free = [node for node in free if all(node.node_id not in stage.node_ids for stage in new)]
    for node in free:  # fastest first
        in_plan = {node.node_id, *whole_ids, *(i for pipe in pipes for stage in pipe for i in stage.node_ids)}
        _with_leftover(shape, pipes, node, {i: by_id[i] for i in by_id if i in in_plan}, measured, stages is None)
    if not whole_ids and not pipes:
        raise error
    return ModelPlan(shape.name, tuple(whole_ids), tuple(tuple(pipe) for pipe in pipes))


def plan_model(
    shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None = None, measured: Measurements | None = None
) -> ModelPlan:
    """Serve a model with the nodes: those that hold it whole are replicas, the rest form as many pipelines
    as they can, and leftovers replicate bottleneck stages. With stages, only pipelines of that many stages.
    With measurements, stage times are measured ones and include links (see split_layers).

    Raises PlanError when nothing can serve the model.
    """
    return _complete(shape, (), (), usable_nodes(nodes), stages, measured)


def replan(
    previous: ModelPlan,
    shape: ModelShape,
    nodes: Sequence[NodeCapacity],
    stages: int | None = None,
    measured: Measurements | None = None,
    min_gain: float = 0.0,
) -> ModelPlan:
    """Re-plan after nodes joined or left, or measurements changed, moving layers only when that pays.

    The previous plan is cut down to the nodes still present that still hold their part (a
    pipeline left without a node for some stage dissolves), then completed with the free
    nodes as plan_model would. That kept plan wins unless a fresh plan_model serves more than
    (1 + min_gain) times its throughput (plan_throughput); otherwise the fresh plan is returned.
    """
    usable = usable_nodes(nodes)
    fresh = plan_model(shape, usable, stages, measured)
    if previous.model != shape.name:
        return fresh
    by_id = {node.node_id: node for node in usable}

    def kept(ids: tuple[NodeId, ...], start: int, end: int) -> tuple[NodeId, ...]:
        return tuple(i for i in ids if i in by_id and by_id[i].free_bytes >= bytes_on(shape, by_id[i], start, end))

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
    plan = _complete(shape, whole, pipes, usable, stages, measured)
    ratio = plan_throughput(shape, fresh, usable, measured) / plan_throughput(shape, plan, usable, measured)
    return plan if ratio <= (1 + min_gain) * (1 + 1e-9) else fresh
