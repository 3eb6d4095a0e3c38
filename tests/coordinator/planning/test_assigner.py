"""StageAssigner: offers in, parts of a plan out; what a node serves survives a coordinator restart."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from swarm.coordinator.planning.assigner import StageAssigner, kept_feed, node_assignments
from swarm.coordinator.planning.link_costs import Link, Measurements
from swarm.coordinator.planning.plan_store import state_from_json, state_to_json
from swarm.coordinator.planning.planner import ModelPlan, StageAssignment, stage_bytes
from swarm.gguf_files.stage_files import MANIFEST_NAME, StageManifest
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.hashing import sha256_of
from swarm.shared.plan_messages import AssignmentReply, NodeAssignment, NodeOffer, offer_problem
from swarm.shared.types import NodeId


def offer(node: str, free_bytes: int, slots: int = 1, context: int = 256) -> NodeOffer:
    return NodeOffer(NodeId(node), f"{node}.lan:1", free_bytes, 1e9, slots, context)


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


def test_replicas_of_a_stage_feed_the_next_stage_replica_behind_the_faster_link_keeping_the_load_even() -> None:
    plan = ModelPlan("m", (), ((StageAssignment(0, 2, ("a1", "a2")), StageAssignment(2, 4, ("b1", "b2"))),))
    addresses = {"a1": "h1:1", "a2": "h2:1", "b1": "h3:1", "b2": "h4:1"}
    slow, fast = Link(rtt_s=0.01), Link(rtt_s=0.0001)
    links = {("a1", "b1"): slow, ("a1", "b2"): fast, ("a2", "b1"): fast, ("a2", "b2"): fast}
    measured = Measurements({}, {(NodeId(a), NodeId(b)): link for (a, b), link in links.items()}, 0)
    parts = node_assignments(plan, 4, addresses, measured)
    assert (parts["a1"].next_stage, parts["a2"].next_stage) == ("h4:1", "h3:1")  # not in turn: a1 -> b1 is slow
    unmeasured = node_assignments(plan, 4, addresses)
    assert (unmeasured["a1"].next_stage, unmeasured["a2"].next_stage) == ("h3:1", "h4:1")


def test_a_node_keeps_feeding_its_next_stage_replica_while_that_one_still_serves_the_next_stage() -> None:
    layout = ((0, 2), (2, 4))
    serving = NodeAssignment(layout, 0, "b1:1")
    addresses = {NodeId(n): f"{n}:1" for n in ("a", "b1", "b2")}
    both = {NodeId("b1"): NodeAssignment(layout, 1, ""), NodeId("b2"): NodeAssignment(layout, 1, "")}
    better = NodeAssignment(layout, 0, "b2:1")  # the plan now pairs it with b2, over a faster link
    assert kept_feed(serving, better, {NodeId("a"): better, **both}, addresses) == serving  # no restart for that
    only_b2 = {NodeId("a"): better, NodeId("b2"): NodeAssignment(layout, 1, "")}
    assert kept_feed(serving, better, only_b2, addresses) == better  # b1 left the next stage
    moved = NodeAssignment(((0, 3), (3, 4)), 0, "b2:1")
    assert kept_feed(serving, moved, {NodeId("a"): moved, **both}, addresses) == moved  # new layers: new part


@pytest.fixture
def six_layers(tmp_path: Path) -> Path:
    return write_tiny_llama(tmp_path / "six.gguf", n_layer=6, n_embd=256, n_head=4, n_head_kv=2, n_ff=1024)


def test_two_small_offers_form_a_pipeline_and_a_lost_node_moves_the_other(six_layers: Path, tmp_path: Path) -> None:
    assigner = StageAssigner(six_layers, "six", tmp_path / "plans")
    small = sum(assigner.shape.layer_bytes) * 2 // 3  # less than the model, more than half of it
    first = asyncio.run(assigner.assign(offer("a", small)))
    assert first.assignment is None and "needs" in first.message  # one small node holds no plan
    second = asyncio.run(assigner.assign(offer("b", small)))
    again = asyncio.run(assigner.assign(offer("a", small)))
    assert second.assignment is not None and again.assignment is not None
    assert {second.assignment.stage_index, again.assignment.stage_index} == {0, 1}
    assert (tmp_path / "plans" / again.split / MANIFEST_NAME).is_file()  # the stage files were cut for download
    assert not assigner.must_reassign("a")

    restored = StageAssigner(six_layers, "six", tmp_path / "plans")
    restored.restore(state_from_json(state_to_json(assigner.snapshot())))
    assert restored.plan == assigner.plan and not restored.must_reassign("a")

    restored.prune(dead=["b"], registered=["a", "b"])
    assert restored.plan is None and restored.must_reassign("a")


def test_a_node_is_planned_with_the_kv_cache_its_slots_and_context_allocate(six_layers: Path, tmp_path: Path) -> None:
    """Memory for the whole model at 4 x 4096 KV tokens is not enough at 16 x 4096: the offer's own
    slots x context decide, not a coordinator-wide budget."""
    assigner = StageAssigner(six_layers, "six", tmp_path / "plans")
    shape = assigner.shape
    room = stage_bytes(shape, 0, shape.n_layers, 4 * 4096)
    crowded = asyncio.run(assigner.assign(offer("crowded", room, slots=16, context=4096)))
    assert crowded.assignment is None  # alone, it cannot hold the model with 65,536 tokens of KV cache
    fits = asyncio.run(assigner.assign(offer("fits", room, slots=4, context=4096)))
    assert fits.assignment is not None and fits.assignment.layout == ((0, shape.n_layers),)


def test_a_node_whose_kv_cache_leaves_no_room_for_one_layer_is_told_what_to_change(
    six_layers: Path, tmp_path: Path
) -> None:
    assigner = StageAssigner(six_layers, "six", tmp_path / "plans")
    reply = asyncio.run(assigner.assign(offer("crowded", max(assigner.shape.layer_bytes) * 2, slots=64, context=8192)))
    assert reply.assignment is None
    assert "--slots 64 x --context 8192" in reply.message and "cannot hold one layer" in reply.message


def test_an_offer_without_slots_or_context_names_the_field() -> None:
    assert offer_problem(offer("a", 10**9)) == ""
    assert offer_problem(offer("a", 10**9, slots=0)).startswith("slots:")
    assert offer_problem(offer("a", 10**9, context=0)).startswith("context_length:")
    assert offer_problem(offer("", 10**9)).startswith("node_id:")


def test_plans_saved_before_offers_carried_slots_and_context_still_load() -> None:
    old = '{"offers":[{"node_id":"a","address":"h:1","free_bytes":5,"speed":1.0,"asked":2.0}],"serving":{},"plan":null}'
    ((loaded, asked),) = state_from_json(old).offers
    assert (loaded.slots, loaded.context_length, asked) == (8, 2048, 2.0)


def test_a_node_whose_call_times_out_during_the_cut_finds_that_cut_on_asking_again(
    six_layers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cut runs once, however often nodes ask while it runs, and a caller leaving does not stop it."""
    import swarm.coordinator.planning.assigner as assigner_module

    real_link, started = assigner_module.link_whole_model, threading.Event()
    cuts: list[Path] = []

    def slow_link(path: Path, folder: Path) -> object:
        cuts.append(folder)
        started.set()
        time.sleep(1.0)  # a preparation longer than the first caller's deadline below
        return real_link(path, folder)

    monkeypatch.setattr(assigner_module, "link_whole_model", slow_link)
    assigner = StageAssigner(six_layers, "six", tmp_path / "plans")
    whole = sum(assigner.shape.layer_bytes) * 4

    async def main() -> list[AssignmentReply]:
        with pytest.raises(TimeoutError):  # its call's deadline passes while the cut runs
            await asyncio.wait_for(assigner.assign(offer("a", whole)), 0.3)
        return list(await asyncio.gather(assigner.assign(offer("a", whole)), assigner.assign(offer("b", whole))))

    replies = asyncio.run(main())
    assert started.is_set() and len(cuts) == 1, cuts
    assert all(r.assignment is not None for r in replies)
    assert (tmp_path / "plans" / replies[0].split / MANIFEST_NAME).is_file()


def test_a_whole_replica_is_served_the_model_file_itself_not_a_cut_copy(six_layers: Path, tmp_path: Path) -> None:
    assigner = StageAssigner(six_layers, "six", tmp_path / "plans")
    reply = asyncio.run(assigner.assign(offer("a", sum(assigner.shape.layer_bytes) * 4)))
    assert reply.assignment is not None and reply.assignment.layout == ((0, assigner.shape.n_layers),)
    folder = tmp_path / "plans" / reply.split
    manifest = StageManifest.from_json((folder / MANIFEST_NAME).read_text())
    (stage,) = manifest.stages
    assert (folder / stage.file).samefile(six_layers)
    assert stage.sha256 == manifest.source_sha256 == sha256_of(six_layers)
    assert (stage.layer_start, stage.layer_end, stage.bytes) == (0, 6, six_layers.stat().st_size)
