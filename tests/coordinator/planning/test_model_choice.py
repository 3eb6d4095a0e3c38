"""Which model each node serves: the pinned and primary models first, a model asked for on a free node or
one taken from a model with nodes to spare, else from the least recently used; never a busy node's or a
pinned model's last node, and never a model loaded moments ago."""

from __future__ import annotations

from swarm.coordinator.planning.model_choice import (
    FleetDemand,
    FleetNode,
    evictions,
    model_for_offer,
    model_too_large,
)
from swarm.shared.types import NodeId

ALL = frozenset({"a", "b", "c"})


def node(name: str, model: str = "", fits: frozenset[str] = ALL, busy: bool = False, since: float = 0.0) -> FleetNode:
    return FleetNode(NodeId(name), model, fits, busy, since)


def demand(**fields: object) -> FleetDemand:
    return FleetDemand(**{"models": ("a", "b", "c"), "now": 100.0, "residency_s": 30.0, **fields})  # type: ignore[arg-type]


def test_a_new_node_serves_a_wanted_model_then_the_pinned_and_primary_ones_then_strengthens_the_busiest() -> None:
    fresh = node("n")
    assert model_for_offer(fresh, [], demand()) == "a"  # the primary first
    assert model_for_offer(fresh, [node("x", "a")], demand(pinned=frozenset({"c"}))) == "c"
    assert model_for_offer(fresh, [node("x", "a")], demand(wanted=("b",))) == "b"
    # Every eager model served and none wanted: the spare goes to the model used last.
    others = [node("x", "a"), node("y", "b")]
    assert model_for_offer(fresh, others, demand(last_used={"a": 5.0, "b": 9.0})) == "b"
    assert model_for_offer(fresh, others, demand(last_used={"a": 9.0, "b": 5.0})) == "a"
    assert model_for_offer(fresh, others, demand()) == "a"  # never used: the primary
    assert model_for_offer(fresh, [node("x", "a")], demand(last_used={"c": 9.0})) == "a"  # c is not loaded
    assert model_for_offer(node("n", "b"), others, demand()) == "b"  # asking again: stays where it is
    assert model_for_offer(node("n", fits=frozenset({"c"})), [node("x", "a")], demand(wanted=("b",))) == "a"


def test_a_wanted_model_takes_a_node_from_a_model_with_nodes_to_spare_before_the_least_recently_used() -> None:
    nodes = [node("1", "a"), node("2", "a"), node("3", "b")]
    # a was used last, yet it has a node to spare: b, used long ago, keeps its only one.
    assert evictions(nodes, demand(wanted=("c",), last_used={"a": 90.0, "b": 10.0})) == {"1": "c"}
    single = [node("1", "a"), node("2", "b")]
    assert evictions(single, demand(wanted=("c",), last_used={"a": 90.0, "b": 10.0})) == {"2": "c"}
    assert evictions(single, demand(wanted=("c",), last_used={"a": 10.0, "b": 90.0})) == {"1": "c"}


def test_busy_nodes_fresh_loads_pinned_models_and_nodes_too_small_are_never_taken() -> None:
    wanted = demand(wanted=("c",), last_used={"a": 10.0, "b": 90.0}, pinned=frozenset({"b"}))
    assert evictions([node("1", "a", busy=True), node("2", "b")], wanted) == {}
    assert evictions([node("1", "a", since=80.0), node("2", "b")], wanted) == {}  # loaded 20 s ago: stays
    assert evictions([node("1", "a", fits=frozenset({"a"})), node("2", "b")], wanted) == {}
    assert evictions([node("1", "a"), node("2", "b")], wanted) == {"1": "c"}
    assert evictions([node("1", "a"), node("2", "c")], wanted) == {}  # served already


def test_two_wanted_models_take_two_nodes_and_a_model_too_large_for_every_node_is_told() -> None:
    nodes = [node("1", "a"), node("2", "a"), node("3", "a")]
    moves = evictions(nodes, demand(wanted=("b", "c")))
    assert sorted(moves.values()) == ["b", "c"] and len(moves) == 2
    assert model_too_large("c", [node("1", fits=frozenset({"a"}))])
    assert not model_too_large("a", [node("1", fits=frozenset({"a"}))])
    assert not model_too_large("c", [])  # nobody offered yet: it may still come
