"""Start-time fair queuing's rule, pure: tags across tenants, weights and classes, and the slot rule."""

from __future__ import annotations

from swarm.coordinator.fairness.queue_tags import BATCH, CLASS_SPAN, INTERACTIVE, advance_class_time, queue_tag
from swarm.coordinator.fairness.slot_share import SlotShare


class FairQueue:
    """The rule driven like the Redis scripts drive it: tags at enqueue, class time moved at dispatch."""

    def __init__(self) -> None:
        self.class_time: dict[int, float] = {}
        self.finish: dict[tuple[int, str], float] = {}
        self.waiting: list[tuple[float, int, str]] = []  # (score, arrival, tenant)
        self.arrivals = 0

    def enqueue(self, tenant: str, priority: int = INTERACTIVE, weight: float = 1.0) -> float:
        tag = queue_tag(priority, weight, self.class_time.get(priority), self.finish.get((priority, tenant)))
        self.finish[(priority, tenant)] = tag.tenant_finish
        self.arrivals += 1
        self.waiting.append((tag.score, self.arrivals, tenant))
        return tag.score

    def dispatch(self) -> str:
        self.waiting.sort()
        score, _, tenant = self.waiting.pop(0)
        priority = int(score // CLASS_SPAN)
        self.class_time[priority] = advance_class_time(self.class_time.get(priority), score)
        return tenant


def test_a_quiet_tenant_waits_behind_at_most_one_request_of_a_flooding_one() -> None:
    queue = FairQueue()
    for _ in range(500):
        queue.enqueue("flood")
    for _ in range(10):
        queue.dispatch()
    queue.enqueue("quiet")
    served = [queue.dispatch() for _ in range(3)]
    assert "quiet" in served[:2]


def test_tenants_take_turns_in_proportion_to_their_weights() -> None:
    queue = FairQueue()
    for _ in range(30):
        queue.enqueue("heavy", weight=2.0)
        queue.enqueue("light", weight=1.0)
    served = [queue.dispatch() for _ in range(30)]
    assert served.count("heavy") == 20
    assert served.count("light") == 10


def test_arrival_order_within_one_tenant_is_kept() -> None:
    queue = FairQueue()
    scores = [queue.enqueue("a") for _ in range(5)]
    assert scores == sorted(scores)
    assert len(set(scores)) == 5


def test_every_interactive_request_goes_before_any_batch_line() -> None:
    queue = FairQueue()
    for _ in range(5):
        queue.enqueue("", priority=BATCH)
    queue.dispatch()
    queue.enqueue("late", priority=INTERACTIVE)
    assert queue.dispatch() == "late"


def test_an_idle_tenant_banks_no_credit() -> None:
    """A tenant idle while others were served starts at the class's time, not at its old finish far behind."""
    queue = FairQueue()
    queue.enqueue("back")
    queue.dispatch()
    for _ in range(100):
        queue.enqueue("busy")
    for _ in range(50):
        queue.dispatch()
    for _ in range(10):
        queue.enqueue("back")
    served = [queue.dispatch() for _ in range(10)]
    assert 4 <= served.count("back") <= 6  # turns from now on, not ten in a row


def test_a_weight_of_zero_or_less_counts_as_one() -> None:
    assert queue_tag(INTERACTIVE, 0.0, None, None).tenant_finish == 1.0


def test_the_slot_rule_keeps_the_last_free_slot_from_a_tenant_already_running() -> None:
    share = SlotShare(active_tenants=2)
    share.took("flood", "m")
    assert share.may_take("flood", "m", free_slots=2)
    assert not share.may_take("flood", "m", free_slots=1)
    assert share.may_take("quiet", "m", free_slots=1)
    assert share.may_take("flood", "other", free_slots=1)  # per model
    assert not share.may_take("quiet", "m", free_slots=0)


def test_a_tenant_alone_takes_every_slot() -> None:
    share = SlotShare(active_tenants=1)
    share.took("only", "m")
    assert share.may_take("only", "m", free_slots=1)


def test_a_share_below_one_caps_a_tenant_while_others_are_active() -> None:
    share = SlotShare(active_tenants=2, max_share=0.5)
    share.took("flood", "m")
    assert share.may_take("flood", "m", free_slots=3, total_slots=4)
    share.took("flood", "m")
    assert not share.may_take("flood", "m", free_slots=2, total_slots=4)  # holds half of 4
    assert share.may_take("quiet", "m", free_slots=2, total_slots=4)
    alone = SlotShare(active_tenants=1, max_share=0.5)
    alone.took("flood", "m")
    alone.took("flood", "m")
    assert alone.may_take("flood", "m", free_slots=1, total_slots=4)


def test_a_share_never_keeps_a_tenant_from_its_first_slot() -> None:
    share = SlotShare(active_tenants=3, max_share=0.1)
    assert share.may_take("t", "m", free_slots=2, total_slots=4)
    share.took("t", "m")
    assert not share.may_take("t", "m", free_slots=2, total_slots=4)
