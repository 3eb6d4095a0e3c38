"""Routing is a pure function: least-loaded-first among up workers of the model."""

from dataclasses import replace

from swarm.coordinator.prefix_index import PrefixIndex
from swarm.coordinator.routing import MIN_AFFINITY_CHARS, default_model, pick_worker
from swarm.shared.types import WorkerInfo, WorkerState, WorkerView


def view(wid: str, model: str = "m", slots: int = 4, inflight: int = 0, up: bool = True) -> WorkerView:
    info = WorkerInfo(wid, f"127.0.0.1:{len(wid)}", model, 512, slots, 2)
    return WorkerView(info=info, state=WorkerState.UP if up else WorkerState.DOWN, inflight=inflight)


def test_least_loaded_worker_wins() -> None:
    workers = [view("a", inflight=3), view("b", inflight=1), view("c", inflight=2)]
    assert pick_worker(workers, "m") == workers[1]


def test_load_is_relative_to_slots() -> None:
    small, big = view("small", slots=2, inflight=1), view("big", slots=8, inflight=2)
    assert pick_worker([small, big], "m") == big


def test_down_full_and_other_model_workers_are_skipped() -> None:
    workers = [view("down", up=False), view("full", slots=2, inflight=2), view("other", model="x")]
    assert pick_worker(workers, "m") is None
    assert pick_worker([*workers, view("ok", inflight=1)], "m") == view("ok", inflight=1)


def test_idle_ties_go_to_the_worker_given_the_fewest_requests() -> None:
    a, b = view("a"), view("b")
    assert pick_worker([replace(a, assigned=3), replace(b, assigned=2)], "m").info.worker_id == "b"  # type: ignore[union-attr]
    assert pick_worker([replace(a, assigned=2), replace(b, assigned=2)], "m").info.worker_id == "a"  # type: ignore[union-attr]


def test_default_model_prefers_configuration_then_most_served() -> None:
    workers = [view("a", model="x"), view("b", model="y"), view("c", model="y")]
    workers.append(view("d", model="z", up=False))
    assert default_model(workers, None) == "y"
    assert default_model(workers, "x") == "x"
    assert default_model([view("d", up=False)], None) is None


def test_prefix_holder_wins_while_its_load_allows() -> None:
    holder, idle = view("holder", slots=4, inflight=1), view("idle", slots=4)
    long_hit = {"holder": MIN_AFFINITY_CHARS + 10}
    assert pick_worker([holder, idle], "m", long_hit) == holder
    assert pick_worker([holder, idle], "m", {"holder": MIN_AFFINITY_CHARS - 1}) == idle  # too short to matter
    busy_holder = view("holder", slots=4, inflight=3)  # 0.75 busier than the idle worker: too loaded
    assert pick_worker([busy_holder, idle], "m", long_hit) == idle
    full_holder = view("holder", slots=4, inflight=4)
    assert pick_worker([full_holder, idle], "m", long_hit) == idle


def test_prefix_index_finds_the_worker_that_ran_the_conversation() -> None:
    index = PrefixIndex()
    index.record("a", 2, "System: be brief. User: hi. Assistant: hello!")
    index.record("b", 2, "Something else entirely")
    hits = index.matches("System: be brief. User: hi. Assistant: hello! User: how are you?")
    assert hits["a"] == len("System: be brief. User: hi. Assistant: hello!")
    assert hits["b"] == 1  # just the "S"
    index.record("a", 2, "x")
    index.record("a", 2, "y")  # only as many texts as slots are remembered
    assert "a" not in index.matches("System: be brief.")
    index.forget("b")
    assert "b" not in index.matches("Something")
