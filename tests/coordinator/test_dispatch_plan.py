"""The dispatch decision is a pure function: waiting requests and workers in, assignments and expiries out."""

from __future__ import annotations

from collections.abc import Mapping

from swarm.coordinator.dispatch_plan import (
    Assignment,
    DispatchPlan,
    Expiry,
    ModelLoads,
    WaitingRequest,
    no_worker_expiry,
    plan_dispatch,
)
from swarm.coordinator.fairness.slot_share import SlotShare
from swarm.coordinator.routing import MIN_AFFINITY_CHARS
from swarm.shared.types import WorkerId, WorkerInfo, WorkerState, WorkerView

NOW_MS = 1_000_000


def view(
    wid: str, model: str = "m", slots: int = 2, inflight: int = 0, state: WorkerState = WorkerState.UP
) -> WorkerView:
    return WorkerView(info=WorkerInfo(WorkerId(wid), f"{wid}:1", model, 512, slots, 1), state=state, inflight=inflight)


def waiting(request_id: str, model: str = "m", prompt: str = "p", waited_s: float = 0.0) -> WaitingRequest:
    return WaitingRequest(request_id, model, prompt, NOW_MS - int(waited_s * 1000))


def no_prefixes(prompt: str) -> Mapping[str, int]:
    return {}


def plan(requests: list[WaitingRequest], workers: list[WorkerView], wait_s: float = 10.0) -> DispatchPlan:
    return plan_dispatch(requests, workers, no_prefixes, NOW_MS, wait_s)


def assigned(result: DispatchPlan) -> list[tuple[str, str]]:
    return [(a.request_id, a.worker.info.worker_id) for a in result.assignments]


def test_requests_fill_free_slots_in_queue_order_least_loaded_first() -> None:
    result = plan([waiting(f"r{i}") for i in range(5)], [view("a"), view("b", inflight=1)])
    assert assigned(result) == [("r0", "a"), ("r1", "a"), ("r2", "b")]  # r3 and r4 wait: every slot is taken
    assert result.expired == ()


def test_each_pick_counts_as_load_for_the_next() -> None:
    result = plan([waiting("r0"), waiting("r1")], [view("a", slots=4), view("b", slots=4)])
    assert assigned(result) == [("r0", "a"), ("r1", "b")]


def test_a_request_waits_for_a_missing_model_then_expires() -> None:
    workers = [view("a", model="other"), view("b", state=WorkerState.DOWN), view("c", state=WorkerState.DRAINING)]
    result = plan([waiting("young", waited_s=9), waiting("old", waited_s=11)], workers)
    assert result.assignments == ()
    assert result.expired == (Expiry("old", "no worker serving model 'm' is up (waited 11 s)"),)


def test_requests_of_a_busy_model_wait_without_limit() -> None:
    result = plan([waiting("r", waited_s=3600)], [view("a", slots=1, inflight=1)])
    assert result == DispatchPlan()


def test_models_are_routed_independently() -> None:
    result = plan(
        [waiting("x1", model="x"), waiting("m1"), waiting("x2", model="x")], [view("a"), view("b", model="x", slots=1)]
    )
    assert assigned(result) == [("x1", "b"), ("m1", "a")]


def test_a_worker_holding_the_prompt_s_prefix_wins_while_not_much_busier() -> None:
    prompt = "x" * MIN_AFFINITY_CHARS

    def hits(text: str) -> Mapping[str, int]:
        return {"b": len(text)} if text == prompt else {}

    workers = [view("a", slots=4), view("b", slots=4, inflight=1)]
    result = plan_dispatch([waiting("r", prompt=prompt), waiting("s")], workers, hits, NOW_MS, 10.0)
    assert result.assignments == (Assignment("r", workers[1]), Assignment("s", workers[0]))


def test_prefixes_are_not_matched_when_no_slot_is_free() -> None:
    asked: list[str] = []

    def hits(text: str) -> Mapping[str, int]:
        asked.append(text)
        return {}

    plan_dispatch([waiting("r", prompt="long prompt")], [view("a", slots=1, inflight=1)], hits, NOW_MS, 10.0)
    assert asked == []


def test_with_the_slot_rule_a_running_tenant_leaves_the_last_slot_to_others() -> None:
    requests = [WaitingRequest(f"f{i}", "m", "p", NOW_MS, tenant="flood") for i in range(4)]
    requests.append(WaitingRequest("q", "m", "p", NOW_MS, tenant="quiet"))
    share = SlotShare(active_tenants=2)
    result = plan_dispatch(requests, [view("a", slots=4)], no_prefixes, NOW_MS, 10.0, share)
    assert assigned(result) == [("f0", "a"), ("f1", "a"), ("f2", "a"), ("q", "a")]


LOADS = ModelLoads(planned=frozenset({"b"}), wait_s=180.0)


def test_a_request_for_a_planned_model_no_worker_serves_waits_the_load_wait_not_the_worker_wait() -> None:
    requests = [
        waiting("loading", model="b", waited_s=170),
        waiting("too-long", model="b", waited_s=181),
        waiting("unplanned", model="x", waited_s=11),
        waiting("young", model="x", waited_s=9),
    ]
    result = plan_dispatch(requests, [view("a")], no_prefixes, NOW_MS, 10.0, loads=LOADS)
    assert result.assignments == ()
    assert result.expired == (
        Expiry("too-long", "model 'b' is still loading (waited 181 s); retry shortly"),
        Expiry("unplanned", "no worker serving model 'x' is up (waited 11 s)"),
    )


def test_without_the_load_rule_a_planned_model_waits_only_the_worker_wait() -> None:
    """The rule is what makes the difference: the same request, given no loads, expires at no_worker_wait_s."""
    request = waiting("r", model="b", waited_s=11)
    assert no_worker_expiry(request, NOW_MS, 10.0) == Expiry("r", "no worker serving model 'b' is up (waited 11 s)")
    assert no_worker_expiry(request, NOW_MS, 10.0, LOADS) is None


def test_a_planned_model_once_served_is_dispatched_like_any_other() -> None:
    result = plan_dispatch(
        [waiting("r", model="b", waited_s=500)], [view("w", model="b")], no_prefixes, NOW_MS, 10.0, loads=LOADS
    )
    assert assigned(result) == [("r", "w")]
    assert result.expired == ()
