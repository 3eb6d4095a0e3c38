"""Start-time fair queuing: the pure rule that gives a waiting request its place in the queue.

Each priority class has a virtual time: the tag of the request it last dispatched. Each tenant
has, per class, the virtual finish of its last request. A new request starts at the later of the
two and finishes 1/weight after, so a tenant with 500 requests queued holds tags 500/weight deep
while another tenant's single request starts at the class's current time: it waits behind at most
one request of each other tenant. Tags are queue scores: class * CLASS_SPAN + virtual time, so every
request of a lower class number is served first and a requeued request keeps its score.
The same rule runs atomically in Redis (fairness.fair_clock) for coordinators sharing one queue.
"""

from __future__ import annotations

from dataclasses import dataclass

# Wide enough that virtual time (in requests of weight 1) never reaches the next class.
CLASS_SPAN = 10**12
INTERACTIVE = 0
BATCH = 1


@dataclass(frozen=True)
class QueueTag:
    score: float  # the request's place: its class's base plus its virtual start
    tenant_finish: float  # the tenant's virtual finish in its class after this request


def class_base(priority: int) -> float:
    return float(max(priority, 0) * CLASS_SPAN)


def queue_tag(priority: int, weight: float, class_time: float | None, tenant_finish: float | None) -> QueueTag:
    """The tag of a request given its class's virtual time and its tenant's last finish (None: none yet)."""
    base = class_base(priority)
    start = max(base, base if class_time is None else class_time, base if tenant_finish is None else tenant_finish)
    return QueueTag(start, start + tag_step(weight))


def tag_step(weight: float) -> float:
    """How far one request moves its tenant's finish: a tenant of weight 2 gets two turns to another's one."""
    return 1.0 / weight if weight > 0 else 1.0


def advance_class_time(class_time: float | None, dispatched_score: float) -> float:
    """The class's virtual time once a request with this score was dispatched: it never goes back."""
    return dispatched_score if class_time is None else max(class_time, dispatched_score)
