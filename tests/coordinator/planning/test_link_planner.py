"""The planner with measurements: measured per-layer times and links move the cuts, pick the nodes, count the stages."""

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import replace

import pytest

from swarm.coordinator.planning.link_costs import Link, Measurements, cut_bytes, head_layers
from swarm.coordinator.planning.model_plan import plan_model, plan_throughput, replan
from swarm.coordinator.planning.planner import (
    ModelPlan,
    ModelShape,
    NodeCapacity,
    StageAssignment,
    split_layers,
    stage_bytes,
)
from swarm.shared.types import NodeId

MB = 10**6
MS = 1e-3


def synthetic(layers: int = 18, layer_mb: int = 10, output_mb: int = 0, hidden: int = 640) -> ModelShape:
    return ModelShape("synthetic", (layer_mb * MB,) * layers, 0, output_mb * MB, 0, hidden)


def node(node_id: str, free_mb: float) -> NodeCapacity:
    return NodeCapacity(NodeId(node_id), int(free_mb * MB), 1e9, 1)


def measured(
    layer_ms: dict[str, float], links: dict[tuple[str, str], Link] | None = None, cut: int = 2560
) -> Measurements:
    """Per-layer times in ms; links one way as given (both ways when only one is)."""
    both = {**{(b, a): link for (a, b), link in (links or {}).items()}, **(links or {})}
    return Measurements(
        {NodeId(n): t * MS for n, t in layer_ms.items()},
        {(NodeId(a), NodeId(b)): link for (a, b), link in both.items()},
        cut,
    )


def layers(stages: Sequence[StageAssignment]) -> dict[str, int]:
    return {s.node_ids[0]: s.layer_end - s.layer_start for s in stages}


def test_a_node_half_as_fast_gets_half_the_layers_and_the_split_serves_more_than_an_even_one() -> None:
    shape = synthetic()  # 180 MB: neither 120 MB node holds it whole
    nodes = [node("fast", 120), node("slow", 120)]
    costs = measured({"fast": 1.0, "slow": 2.0})
    split = split_layers(shape, nodes, measured=costs)
    assert layers(split) == {"fast": 12, "slow": 6}
    planned = plan_model(shape, nodes, measured=costs)
    even = ModelPlan(shape.name, (), ((StageAssignment(0, 9, ("fast",)), StageAssignment(9, 18, ("slow",))),))
    gain = plan_throughput(shape, planned, nodes, costs) / plan_throughput(shape, even, nodes, costs)
    assert gain == pytest.approx(1.5) and gain >= 1.3


def test_the_head_counts_as_work_of_the_last_stage() -> None:
    shape = synthetic(output_mb=60)  # the head reads as much as 6 layers
    assert head_layers(shape) == 6
    split = split_layers(shape, [node("a", 250), node("b", 250)], stages=2, measured=measured({"a": 1.0, "b": 1.0}))
    assert [s.layer_end - s.layer_start for s in split] == [12, 6]  # 12 = 6 layers + the head


def test_a_stage_feeding_a_slow_link_takes_fewer_layers() -> None:
    shape = synthetic()
    nodes = [node("a", 120), node("b", 120)]
    fast = split_layers(shape, nodes, measured=measured({"a": 1.0, "b": 1.0}))
    assert sorted(layers(fast).values()) == [9, 9]
    slow = measured({"a": 1.0, "b": 1.0}, {("a", "b"): Link(rtt_s=8 * MS)})  # 4 ms one way: 4 layers' time
    first, second = split_layers(shape, nodes, measured=slow)
    assert (first.layer_end - first.layer_start, second.layer_end - second.layer_start) == (7, 11)


def test_the_pipeline_goes_through_the_fast_links() -> None:
    shape = synthetic()
    nodes = [node("a", 120), node("b", 120), node("c", 120)]
    slow = Link(rtt_s=20 * MS, bytes_per_s=1e6)
    costs = measured({"a": 1.0, "b": 1.0, "c": 1.01}, {("a", "b"): slow, ("a", "c"): Link(), ("b", "c"): Link()})
    split = split_layers(shape, nodes, measured=costs)
    assert len(split) == 2 and "c" in layers(split)


def test_an_unmeasured_pair_is_taken_as_its_reverse_else_as_the_slowest_measured_link() -> None:
    slow, fast = Link(rtt_s=8 * MS), Link(rtt_s=2 * MS)
    costs = Measurements({}, {(NodeId("a"), NodeId("b")): slow, (NodeId("b"), NodeId("c")): fast}, 0)
    assert costs.link_seconds(NodeId("b"), NodeId("a")) == pytest.approx(4 * MS)
    assert costs.link_seconds(NodeId("a"), NodeId("c")) == pytest.approx(4 * MS)  # unknown: no better than the worst
    assert Measurements().link_seconds(NodeId("a"), NodeId("c")) == 0


def test_bandwidth_counts_the_bytes_crossing_the_cut() -> None:
    shape = synthetic(hidden=1000)
    assert cut_bytes(shape) == 4000 and cut_bytes(shape, bfloat16=True) == 2000
    link = Link(rtt_s=2 * MS, bytes_per_s=4e6)
    assert link.seconds(cut_bytes(shape)) == pytest.approx(1 * MS + 1 * MS)


def test_a_model_that_fits_on_one_node_is_not_split_however_fast_the_links() -> None:
    shape = synthetic()
    nodes = [node("a", 400), node("b", 400), node("c", 100)]
    costs = measured({"a": 1.0, "b": 1.0, "c": 0.5})
    plan = plan_model(shape, nodes, measured=costs)
    assert set(plan.whole_replicas) == {"a", "b"} and not plan.pipelines  # c holds no whole model and pairs with none
    told = plan_model(shape, nodes[:2], stages=2, measured=costs)
    assert not told.whole_replicas and [len(p) for p in told.pipelines] == [2]  # unless told to


def test_a_slow_link_means_fewer_cuts() -> None:
    """Three nodes, two hold the model: on fast links the third is one more cut; on slow ones a replica."""
    shape = synthetic()
    nodes = [node("a", 120), node("b", 120), node("c", 120)]
    fast = plan_model(shape, nodes, measured=measured({"a": 1.0, "b": 1.0, "c": 1.0}))
    assert [len(p) for p in fast.pipelines] == [3]
    slow_link = Link(rtt_s=20 * MS)
    every_pair = {pair: slow_link for pair in itertools.permutations("abc", 2)}
    slow = plan_model(shape, nodes, measured=measured({"a": 1.0, "b": 1.0, "c": 1.0}, every_pair))
    (pipe,) = slow.pipelines
    assert len(pipe) == 2 and sorted(len(s.node_ids) for s in pipe) == [1, 2]


def test_no_stage_is_only_global_layers_of_a_sliding_window_model() -> None:
    """Like Gemma 3: every sixth layer is global, and the head reads as much as 47 layers. The head's stage
    wants one layer, but llama.cpp refuses a stage of global layers alone (layer 17)."""
    window = tuple((i + 1) % 6 != 0 for i in range(18))
    shape = ModelShape("gemma-like", (10 * MB,) * 18, 0, 470 * MB, 0, 640, window)
    assert not shape.loadable(17, 18) and shape.loadable(16, 18) and shape.loadable(5, 7)
    nodes = [node("a", 10**6), node("b", 10**6)]
    first, last = split_layers(shape, nodes, stages=2, measured=measured({"a": 1.0, "b": 1.0}))
    assert (first.layer_end, last.layer_start) == (16, 16)  # not 17: the last stage keeps a sliding layer
    unwindowed = ModelShape("plain", shape.layer_bytes, 0, 470 * MB, 0, 640)
    assert split_layers(unwindowed, nodes, stages=2, measured=measured({"a": 1.0, "b": 1.0}))[0].layer_end == 17


def test_unmeasured_nodes_are_estimated_from_their_offered_speed() -> None:
    shape = synthetic()
    nodes = [NodeCapacity(NodeId("a"), 120 * MB, 2e10, 1), NodeCapacity(NodeId("b"), 120 * MB, 1e10, 1)]
    assert layers(split_layers(shape, nodes, measured=Measurements())) == {"a": 12, "b": 6}


def _brute_force(shape: ModelShape, nodes: Sequence[NodeCapacity], costs: Measurements, k: int) -> float:
    """The smallest bottleneck over every ordered choice of k nodes and every contiguous split."""
    n, best = shape.n_layers, math.inf
    for cuts in itertools.combinations(range(1, n), k - 1):
        bounds = [0, *cuts, n]
        for chosen in itertools.permutations(nodes, k):
            stages = tuple(
                StageAssignment(a, b, (c.node_id,))
                for (a, b), c in zip(itertools.pairwise(bounds), chosen, strict=True)
            )
            plan = ModelPlan(shape.name, (), (stages,))
            if all(
                c.free_bytes >= stage_bytes(shape, s.layer_start, s.layer_end, 1)
                and shape.loadable(s.layer_start, s.layer_end)
                for s, c in zip(stages, chosen, strict=True)
            ):
                best = min(best, 1 / plan_throughput(shape, plan, nodes, costs))
    return best


def test_split_matches_brute_force_with_random_speeds_links_and_memory() -> None:
    rng = random.Random(15)
    for _ in range(40):
        shape = synthetic(layers=rng.randint(3, 8), output_mb=rng.choice([0, 10, 25]))
        if rng.random() < 0.5:  # some layers global, as in a sliding-window model: no stage of those alone
            shape = replace(shape, sliding_window=tuple(rng.random() < 0.6 for _ in shape.layer_bytes))
        names = "abcd"[: rng.randint(2, 4)]
        nodes = [node(n, rng.choice([30, 50, 80])) for n in names]
        links = {
            p: Link(rng.uniform(0, 8) * MS, rng.choice([1e6, 1e8, math.inf])) for p in itertools.permutations(names, 2)
        }
        costs = Measurements(
            {NodeId(n): rng.uniform(0.5, 3) * MS for n in names},
            {(NodeId(a), NodeId(b)): link for (a, b), link in links.items()},
            2560,
        )
        k = rng.randint(2, len(names))
        best = _brute_force(shape, nodes, costs, k)
        if math.isinf(best):
            continue
        split = split_layers(shape, nodes, stages=k, measured=costs)
        got = 1 / plan_throughput(shape, ModelPlan(shape.name, (), (split,)), nodes, costs)
        assert got == pytest.approx(best), (shape, nodes, costs, k)


def test_replan_moves_only_for_a_gain_above_min_gain() -> None:
    shape = synthetic()
    nodes = [node("a", 120), node("b", 120)]
    even = plan_model(shape, nodes, measured=measured({"a": 1.0, "b": 1.0}))
    drifted = measured({"a": 1.0, "b": 1.2})  # a fresh plan (10 | 8 layers) serves 10.8 / 10 = 8% more
    assert replan(even, shape, nodes, measured=drifted, min_gain=0.15) == even
    moved = replan(even, shape, nodes, measured=drifted, min_gain=0.05)
    assert moved != even and layers(moved.pipelines[0])["a"] > 9
