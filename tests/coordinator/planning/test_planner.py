"""The stage planner is pure: contiguous layer splits with the smallest bottleneck, replicas, stable re-plans."""

import itertools
import math
import random
from collections.abc import Sequence

import pytest

from swarm.coordinator.planning.model_plan import plan_model, plan_throughput, replan
from swarm.coordinator.planning.planner import (
    EXACT_NODES,
    ModelPlan,
    ModelShape,
    NodeCapacity,
    PlanError,
    StageAssignment,
    holds_a_layer,
    split_layers,
    stage_bytes,
)
from swarm.shared.types import NodeId

MB = 10**6
KV_TOKENS = 1  # most test nodes hold one token of KV cache, so a shape's kv_mb is their KV cache per layer


def bytes_of(shape: ModelShape, start: int, end: int) -> int:
    return stage_bytes(shape, start, end, KV_TOKENS)


def gemma_270m(kv_mb: int = 2) -> ModelShape:
    """Like Gemma 3 270M Q4_K_M: 18 layers of about 9 MB, 170 MB of tied embeddings, no separate head."""
    return ModelShape("gemma-3-270m", (9 * MB,) * 18, 170 * MB, 0, kv_mb * MB)


def synthetic(layers: int, layer_mb: int = 10, input_mb: int = 0, output_mb: int = 0, kv_mb: int = 0) -> ModelShape:
    return ModelShape("synthetic", (layer_mb * MB,) * layers, input_mb * MB, output_mb * MB, kv_mb * MB)


def node(node_id: str, free_mb: float, speed: float = 1.0) -> NodeCapacity:
    return NodeCapacity(NodeId(node_id), int(free_mb * MB), speed, KV_TOKENS)


def bottleneck(shape: ModelShape, stages: Sequence[StageAssignment], nodes: Sequence[NodeCapacity]) -> float:
    speed = {n.node_id: n.speed for n in nodes}
    return max(bytes_of(shape, s.layer_start, s.layer_end) / sum(speed[i] for i in s.node_ids) for s in stages)


def assert_valid_pipeline(shape: ModelShape, stages: Sequence[StageAssignment], nodes: Sequence[NodeCapacity]) -> None:
    """Every layer exactly once, in order, each stage non-empty and fitting every node that serves it."""
    free = {n.node_id: n.free_bytes for n in nodes}
    assert [s.layer_start for s in stages] == [0, *(s.layer_end for s in stages[:-1])]
    assert stages[-1].layer_end == shape.n_layers
    for stage in stages:
        assert stage.layer_start < stage.layer_end and stage.node_ids
        assert all(bytes_of(shape, stage.layer_start, stage.layer_end) <= free[i] for i in stage.node_ids)


def assert_valid_plan(shape: ModelShape, plan: ModelPlan, nodes: Sequence[NodeCapacity]) -> None:
    used = [*plan.whole_replicas, *(i for pipe in plan.pipelines for s in pipe for i in s.node_ids)]
    assert len(used) == len(set(used)), "a node serves twice"
    free = {n.node_id: n.free_bytes for n in nodes}
    assert all(free[i] >= bytes_of(shape, 0, shape.n_layers) for i in plan.whole_replicas)
    for pipe in plan.pipelines:
        assert_valid_pipeline(shape, pipe, nodes)


def brute_force(shape: ModelShape, nodes: Sequence[NodeCapacity], stages: int | None) -> tuple[int, float] | None:
    """(stages, best bottleneck) over every ordered choice of nodes and every contiguous split; fewest stages first."""
    n = shape.n_layers
    for k in [stages] if stages else range(1, min(n, len(nodes)) + 1):
        best = math.inf
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = [0, *cuts, n]
            sizes = [bytes_of(shape, a, b) for a, b in itertools.pairwise(bounds)]
            for chosen in itertools.permutations(nodes, k):
                if all(size <= c.free_bytes for size, c in zip(sizes, chosen, strict=True)):
                    best = min(best, max(size / c.speed for size, c in zip(sizes, chosen, strict=True)))
        if best < math.inf:
            return k, best
    return None


def test_stage_bytes_counts_weights_kv_embeddings_and_head() -> None:
    shape = ModelShape("m", (10, 20, 30), input_bytes=100, output_bytes=1000, kv_bytes_per_token=1)
    assert stage_bytes(shape, 0, 1, 1) == 10 + 1 + 100
    assert stage_bytes(shape, 1, 2, 1) == 20 + 1
    assert stage_bytes(shape, 1, 3, 1) == 50 + 2 + 1000
    assert stage_bytes(shape, 0, 3, 1) == 60 + 3 + 100 + 1000
    assert stage_bytes(shape, 1, 3, 64) == 50 + 2 * 64 + 1000  # every layer holds the node's KV tokens
    with pytest.raises(ValueError):
        stage_bytes(shape, 2, 2, 1)
    with pytest.raises(ValueError):
        ModelShape("empty", (), 0, 0, 0)


def test_each_node_is_planned_with_its_own_kv_cache() -> None:
    """16 slots x 4096 tokens cost four times the KV cache of 8 x 2048: that node gets fewer layers."""
    shape = ModelShape("m", (10 * MB,) * 10, 0, 0, kv_bytes_per_token=100)  # 6.6 MB per layer at 65,536 tokens
    big_cache = NodeCapacity(NodeId("big-cache"), 70 * MB, 1.0, kv_tokens=16 * 4096)
    small_cache = NodeCapacity(NodeId("small-cache"), 70 * MB, 1.0, kv_tokens=8 * 2048)
    stages = split_layers(shape, [big_cache, small_cache], stages=2)
    layers = {s.node_ids[0]: (s.layer_start, s.layer_end) for s in stages}
    assert layers == {"big-cache": (0, 4), "small-cache": (4, 10)}  # 5 layers would need 83 MB on big-cache
    start, end = layers["big-cache"]
    assert stage_bytes(shape, start, end, big_cache.kv_tokens) <= big_cache.free_bytes


def test_a_node_whose_kv_cache_leaves_no_room_for_a_layer_is_refused() -> None:
    shape = ModelShape("m", (10 * MB,) * 4, 0, 0, kv_bytes_per_token=100)
    crowded = NodeCapacity(NodeId("crowded"), 15 * MB, 1.0, kv_tokens=16 * 4096)  # 10 MB + 6.6 MB > 15 MB
    roomy = NodeCapacity(NodeId("roomy"), 15 * MB, 1.0, kv_tokens=2048)
    assert not holds_a_layer(shape, crowded) and holds_a_layer(shape, roomy)
    with pytest.raises(PlanError, match="KV cache"):
        plan_model(shape, [crowded])


def test_faster_node_gets_more_layers() -> None:
    shape = synthetic(12)
    fast, slow = node("fast", 1000, speed=3.0), node("slow", 1000, speed=1.0)
    stages = split_layers(shape, [slow, fast], stages=2)
    assert_valid_pipeline(shape, stages, [fast, slow])
    layers = {s.node_ids[0]: s.layer_end - s.layer_start for s in stages}
    assert layers == {"fast": 9, "slow": 3}  # 90 MB / 3 == 30 MB / 1: both stages take the same time


def test_memory_limits_the_fast_node() -> None:
    shape = synthetic(10)
    fast, slow = node("fast", 30, speed=10.0), node("slow", 1000, speed=1.0)
    stages = split_layers(shape, [fast, slow], stages=2)
    assert {s.node_ids[0]: s.layer_end - s.layer_start for s in stages} == {"fast": 3, "slow": 7}


def test_split_matches_brute_force_on_small_cases() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(150):
        n = rng.randint(1, 6)
        shape = ModelShape(
            "r", tuple(rng.randint(1, 9) * MB for _ in range(n)), rng.randint(0, 12) * MB, rng.randint(0, 6) * MB, MB
        )
        nodes = [node(f"n{i}", rng.randint(5, 40), rng.choice([0.5, 1.0, 2.0, 3.0])) for i in range(rng.randint(1, 4))]
        for stages in (None, rng.randint(1, 4)):
            expected = brute_force(shape, nodes, stages) if not stages or stages <= n else None
            if expected is None:
                with pytest.raises(PlanError):
                    split_layers(shape, nodes, stages)
                continue
            got = split_layers(shape, nodes, stages)
            assert_valid_pipeline(shape, got, nodes)
            assert (len(got), bottleneck(shape, got, nodes)) == expected, (shape, nodes, stages)
            checked += 1
    assert checked > 100


def test_model_that_fits_nowhere_whole_becomes_a_pipeline() -> None:
    shape = gemma_270m()  # 18 * (9 + 2) + 170 = 368 MB
    nodes = [node("a", 250), node("b", 250), node("c", 100)]
    plan = plan_model(shape, nodes)
    assert plan.whole_replicas == ()
    assert len(plan.pipelines) == 1 and len(plan.pipelines[0]) == 2  # the fewest nodes: two of 250 MB
    assert_valid_plan(shape, plan, nodes)
    assert plan.pipelines[0][0].layer_start == 0 and bytes_of(shape, 0, plan.pipelines[0][0].layer_end) > 170 * MB


def test_nodes_that_hold_the_model_become_whole_replicas() -> None:
    shape = gemma_270m()
    big = [node("big1", 512, 2.0), node("big2", 400, 1.0)]
    plan = plan_model(shape, [*big, node("small", 200)])
    assert plan == ModelPlan("gemma-3-270m", ("big1", "big2"), ())  # the small node alone cannot form a pipeline

    plan = plan_model(shape, [*big, node("small1", 200), node("small2", 200)])
    assert plan.whole_replicas == ("big1", "big2")
    assert [sorted(s.node_ids[0] for s in pipe) for pipe in plan.pipelines] == [["small1", "small2"]]
    assert_valid_plan(shape, plan, [*big, node("small1", 200), node("small2", 200)])


def test_stages_k_is_honoured() -> None:
    shape = synthetic(12, input_mb=5, output_mb=5)
    nodes = [node(f"n{i}", 1000, 1.0 + i / 10) for i in range(7)]
    plan = plan_model(shape, nodes, stages=3)
    assert plan.whole_replicas == ()  # every node could hold it whole, but the operator asked for 3 stages
    assert [len(pipe) for pipe in plan.pipelines] == [3, 3]
    assert sum(len(s.node_ids) for pipe in plan.pipelines for s in pipe) == 7  # the 7th node replicates a stage
    assert_valid_plan(shape, plan, nodes)
    for k in range(1, 5):
        assert len(split_layers(shape, nodes, stages=k)) == k


@pytest.mark.parametrize(
    ("shape", "nodes", "stages", "words"),
    [
        (gemma_270m(), [node("a", 100), node("b", 100), node("c", 100)], None, ["368.0 MB", "3 free nodes hold 300.0"]),
        (gemma_270m(), [node("a", 150), node("b", 150), node("c", 150)], None, ["end stage", "embeddings", "150.0"]),
        (gemma_270m(), [node("a", 1000)], 19, ["18 layers", "19 stages"]),
        (gemma_270m(), [node("a", 1000), node("b", 1000)], 3, ["3 stages", "only 2 free nodes"]),
        (gemma_270m(), [], None, ["no free node"]),
        (synthetic(4, layer_mb=10), [node("a", 25), node("b", 15)], 2, ["40.0 MB", "2 stages"]),
    ],
)
def test_impossible_cases_raise_a_helpful_plan_error(
    shape: ModelShape, nodes: list[NodeCapacity], stages: int | None, words: list[str]
) -> None:
    with pytest.raises(PlanError) as raised:
        plan_model(shape, nodes, stages)
    assert shape.name in str(raised.value)
    for word in words:
        assert word in str(raised.value)


def test_leftover_nodes_replicate_the_bottleneck_stage() -> None:
    shape = synthetic(10)  # 100 MB
    nodes = [node("a", 60, 2.0), node("b", 60, 1.0), node("spare", 30, 1.0)]
    plan = plan_model(shape, nodes)
    assert_valid_plan(shape, plan, nodes)
    # a: 60 MB at speed 2 (30), b: 40 MB at speed 1 (40) is the bottleneck; the spare cannot hold its 40 MB
    assert plan == ModelPlan("synthetic", (), ((StageAssignment(0, 6, ("a",)), StageAssignment(6, 10, ("b",))),))

    nodes = [node("a", 60, 2.0), node("b", 60, 1.0), node("spare", 40, 1.0)]
    plan = plan_model(shape, nodes)
    assert plan.pipelines == ((StageAssignment(0, 6, ("a",)), StageAssignment(6, 10, ("b", "spare"))),)
    assert plan_throughput(shape, plan, nodes) > plan_throughput(shape, plan_model(shape, nodes[:2]), nodes)


def test_replan_drops_a_node_that_left_and_still_covers_every_layer() -> None:
    shape = gemma_270m()
    nodes = [node("a", 250), node("b", 250), node("c", 250), node("d", 250), node("e", 250)]
    before = plan_model(shape, nodes)
    assert len(before.pipelines) == 2  # two pipelines of two; the fifth node replicates a bottleneck stage
    leaver = before.pipelines[1][0].node_ids[0]  # its pipeline dissolves; its partner becomes a spare
    remaining = [n for n in nodes if n.node_id != leaver]
    after = replan(before, shape, remaining)
    assert_valid_plan(shape, after, remaining)
    assert leaver not in {i for pipe in after.pipelines for s in pipe for i in s.node_ids}
    assert sum(len(s.node_ids) for pipe in after.pipelines for s in pipe) == 4


def test_replan_keeps_assignments_when_a_node_joins() -> None:
    shape = synthetic(10)
    nodes = [node("a", 60), node("b", 60)]
    before = plan_model(shape, nodes)
    joined = [*nodes, node("new", 60)]
    after = replan(before, shape, joined)
    assert_valid_plan(shape, after, joined)
    assert [(s.layer_start, s.layer_end) for s in after.pipelines[0]] == [
        (s.layer_start, s.layer_end) for s in before.pipelines[0]
    ]
    assert sorted(i for s in after.pipelines[0] for i in s.node_ids) == ["a", "b", "new"]  # a replica was added
    assert replan(after, shape, joined) == after  # nothing changed: nothing moves


def test_replan_keeps_layers_where_they_are_when_a_fresh_plan_is_no_better() -> None:
    shape = synthetic(10)
    nodes = [node("a", 100), node("b", 100)]
    previous = ModelPlan("synthetic", (), ((StageAssignment(0, 5, ("a",)), StageAssignment(5, 10, ("b",))),))
    assert replan(previous, shape, nodes) == previous  # a fresh plan would make both whole replicas: same throughput


def test_replan_moves_layers_when_that_pays() -> None:
    shape = synthetic(12)
    nodes = [node("a", 50, 1.0), node("b", 50, 1.0), node("c", 50, 1.0), node("big", 100, 4.0)]
    previous = plan_model(shape, nodes[:3])
    assert [len(pipe) for pipe in previous.pipelines] == [3]
    after = replan(previous, shape, nodes)
    assert after == plan_model(shape, nodes)
    assert plan_throughput(shape, after, nodes) > plan_throughput(shape, previous, nodes)


def test_plans_are_deterministic_and_ignore_node_order() -> None:
    shape = gemma_270m()
    nodes = [node(f"n{i}", 120 + 40 * (i % 4), 1.0 + (i % 3) / 2) for i in range(8)]
    plan = plan_model(shape, nodes)
    assert_valid_plan(shape, plan, nodes)
    shuffled = list(nodes)
    random.Random(3).shuffle(shuffled)
    assert plan_model(shape, shuffled) == plan == plan_model(shape, nodes)
    assert replan(plan, shape, shuffled) == plan


def test_many_nodes_use_the_heuristic_search() -> None:
    shape = gemma_270m()
    nodes = [node(f"n{i:02}", 150 + 20 * (i % 5), 1.0 + (i % 4) / 4) for i in range(EXACT_NODES + 6)]
    stages = split_layers(shape, nodes)
    assert_valid_pipeline(shape, stages, nodes)
    assert len(stages) == 2  # 368 MB: no node holds it whole, two do
    plan = plan_model(shape, nodes)
    assert_valid_plan(shape, plan, nodes)
    assert len(plan.pipelines) >= 3
    assert len(split_layers(shape, nodes, stages=EXACT_NODES + 2)) == EXACT_NODES + 2


def test_no_stage_is_only_global_layers_of_a_sliding_window_model() -> None:
    window = (True, False, True, False)  # layers 1 and 3 are global: neither makes a stage alone
    shape = ModelShape("windowed", (10 * MB,) * 4, 0, 0, 0, 64, window)
    nodes = [node(n, 25) for n in "abcd"]  # each holds at most 2 layers
    assert [(s.layer_start, s.layer_end) for s in split_layers(shape, nodes, 2)] == [(0, 2), (2, 4)]
    for stages in (3, 4):  # some one-layer stage would hold layer 1 or 3 alone
        with pytest.raises(PlanError):
            split_layers(shape, nodes, stages)


def test_duplicate_node_ids_are_refused() -> None:
    with pytest.raises(PlanError, match="unique"):
        plan_model(gemma_270m(), [node("a", 500), node("a", 500)])
