"""ModelFleet with several coordinators: a want or a use another coordinator's request recorded, merged in,
moves this fleet's nodes as its own would; a want met elsewhere is forgotten here."""

from __future__ import annotations

import asyncio
from pathlib import Path

from swarm.coordinator.planning.assigner import StageAssigner
from swarm.coordinator.planning.model_fleet import ModelFleet
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.plan_messages import NodeOffer
from swarm.shared.types import NodeId, WorkerId, WorkerInfo, WorkerView


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fleet_of(tmp_path: Path, names: str, clock: Clock) -> ModelFleet:
    assigners = [
        StageAssigner(write_tiny_llama(tmp_path / f"{name}.gguf", seed=seed), name, tmp_path / "plans")
        for seed, name in enumerate(names)
    ]
    return ModelFleet(assigners, residency_s=30.0, clock=clock)


def join(fleet: ModelFleet, node: str) -> str:
    """The model the node is given (it offers room for any one of the tiny models)."""
    reply = asyncio.run(fleet.assign(NodeOffer(NodeId(node), f"{node}.lan:1", 10**9, 1e9, 2, 256)))
    return reply.model


def serving(node: str, model: str) -> WorkerView:
    return WorkerView(WorkerInfo(WorkerId(node), f"{node}.lan:1", model, 256, 2, 1))


def test_a_want_merged_from_another_coordinator_moves_a_node_to_the_model(tmp_path: Path) -> None:
    clock = Clock()
    fleet = fleet_of(tmp_path, "ab", clock)
    assert [join(fleet, "n1"), join(fleet, "n2")] == ["a", "a"]  # the primary takes every node
    views = [serving("n1", "a"), serving("n2", "a")]
    clock.now += 60  # past their residency
    assert fleet.rebalance(views) == []
    assert not fleet.must_reassign(WorkerId("n1")) and not fleet.must_reassign(WorkerId("n2"))

    # A request for b waits on another coordinator: this fleet learns it only from the shared record.
    fleet.merge_demand({"b": clock.now - 1}, {"a": clock.now - 50, "b": clock.now - 1})
    assert fleet.rebalance(views) == []
    moving = [n for n in ("n1", "n2") if fleet.must_reassign(WorkerId(n))]
    assert len(moving) == 1  # a has a node to spare: one of its two moves
    assert join(fleet, moving[0]) == "b"
    assert {m.name: m.state for m in fleet.describe(views)} == {"a": "loaded", "b": "loading"}

    # Once a worker serves b, rebalance reports the want met, for the shared record to forget.
    fleet.merge_demand({"b": clock.now - 1}, {})
    assert fleet.rebalance([serving("n1", "a"), serving(moving[0], "b")]) == ["b"]


def test_merged_wants_replace_the_fleets_and_merged_uses_keep_the_latest(tmp_path: Path) -> None:
    clock = Clock()
    fleet = fleet_of(tmp_path, "abc", clock)
    for node in ("n1", "n2"):
        join(fleet, node)
    views = [serving("n1", "a"), serving("n2", "a")]
    clock.now += 60
    fleet.want("c")
    fleet.merge_demand({}, {})  # another coordinator met c's want and deleted it from the record
    assert {m.name: m.state for m in fleet.describe(views)}["c"] == "available"
    fleet.rebalance(views)
    assert not fleet.must_reassign(WorkerId("n1")) and not fleet.must_reassign(WorkerId("n2"))

    # Two models wanted take both nodes; unknown models in the record (another coordinator's plan) are ignored.
    fleet.used("b")
    fleet.merge_demand({"b": clock.now - 2, "c": clock.now - 1, "z": clock.now}, {"b": 0.0, "z": clock.now})
    fleet.rebalance(views)
    assert fleet.must_reassign(WorkerId("n1")) and fleet.must_reassign(WorkerId("n2"))
    assert sorted([join(fleet, "n1"), join(fleet, "n2")]) == ["b", "c"]
    assert "z" not in {m.name for m in fleet.describe(views)}
