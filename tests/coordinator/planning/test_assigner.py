"""StageAssigner: offers in, parts of a plan out; what a node serves survives a coordinator restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from swarm.coordinator.planning.assigner import StageAssigner, node_assignments
from swarm.coordinator.planning.plan_store import state_from_json, state_to_json
from swarm.coordinator.planning.planner import ModelPlan, StageAssignment
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.plan_messages import NodeOffer


def test_replicas_of_a_stage_feed_the_next_stage_round_robin() -> None:
    plan = ModelPlan(
        "m",
        whole_replicas=("big",),
        pipelines=((StageAssignment(0, 2, ("a1", "a2")), StageAssignment(2, 4, ("b",))),),
    )
    addresses = {"big": "h0:1", "a1": "h1:1", "a2": "h2:1", "b": "h3:1"}
    parts = node_assignments(plan, 4, addresses)
    assert parts["big"].layout == ((0, 4),) and parts["big"].next_stage == ""
    assert parts["a1"].next_stage == parts["a2"].next_stage == "h3:1"
    assert parts["b"].stage_index == 1 and parts["b"].next_stage == ""
    assert parts["a1"].layout == ((0, 2), (2, 4))


@pytest.fixture
def six_layers(tmp_path: Path) -> Path:
    return write_tiny_llama(tmp_path / "six.gguf", n_layer=6, n_embd=256, n_head=4, n_head_kv=2, n_ff=1024)


def test_two_small_offers_form_a_pipeline_and_a_lost_node_moves_the_other(six_layers: Path, tmp_path: Path) -> None:
    assigner = StageAssigner(six_layers, "six", tmp_path / "plans", kv_tokens=256)
    small = sum(assigner.shape.layer_bytes) * 2 // 3  # less than the model, more than half of it
    first = asyncio.run(assigner.assign(NodeOffer("a", "h1:1", small, 1e9)))
    assert first.assignment is None and "needs" in first.message  # one small node holds no plan
    second = asyncio.run(assigner.assign(NodeOffer("b", "h2:1", small, 1e9)))
    again = asyncio.run(assigner.assign(NodeOffer("a", "h1:1", small, 1e9)))
    assert second.assignment is not None and again.assignment is not None
    assert {second.assignment.stage_index, again.assignment.stage_index} == {0, 1}
    assert (tmp_path / "plans" / again.split / again.file).is_file()  # the stage file was cut for download
    assert not assigner.must_reassign("a")

    restored = StageAssigner(six_layers, "six", tmp_path / "plans", kv_tokens=256)
    restored.restore(state_from_json(state_to_json(assigner.snapshot())))
    assert restored.plan == assigner.plan and not restored.must_reassign("a")

    restored.prune(dead=["b"], registered=["a", "b"])
    assert restored.plan is None and restored.must_reassign("a")
