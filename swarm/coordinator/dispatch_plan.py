"""The pure dispatch decision: which waiting request goes to which worker, and which waited too long."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from swarm.coordinator.fairness.slot_share import SlotShare
from swarm.coordinator.routing import candidates, pick_worker
from swarm.shared.types import WorkerView


@dataclass(frozen=True)
class WaitingRequest:
    request_id: str
    model: str
    prompt: str
    # When it started waiting for a worker: enqueued, failed over, or this coordinator's start,
    # whichever is last (a restarted coordinator gives every request the full wait).
    waiting_since_ms: int
    tenant: str = ""


@dataclass(frozen=True)
class Assignment:
    request_id: str
    worker: WorkerView


@dataclass(frozen=True)
class Expiry:
    request_id: str
    message: str  # why it fails: for the client


@dataclass(frozen=True)
class DispatchPlan:
    assignments: tuple[Assignment, ...] = ()
    expired: tuple[Expiry, ...] = ()


def plan_dispatch(
    waiting: Iterable[WaitingRequest],
    workers: Iterable[WorkerView],
    prefix_hits: Callable[[str], Mapping[str, int]],
    now_ms: int,
    no_worker_wait_s: float,
    share: SlotShare | None = None,
) -> DispatchPlan:
    """Hands waiting requests (in queue order) to workers with free slots, each pick counting as load.

    share: the slot rule of fair queuing (fairness.slot_share); None lets any request take any slot.

    A request whose model has no worker up waits; past no_worker_wait_s it expires. One
    whose workers are all busy waits without limit: the queue bound is the back-pressure.
    prefix_hits(prompt) gives, per worker id, the characters of the prompt its KV cache holds.
    """
    views = list(workers)
    assignments: list[Assignment] = []
    expired: list[Expiry] = []
    for request in waiting:
        serving = candidates(views, request.model)
        if not serving:
            waited_s = (now_ms - request.waiting_since_ms) / 1000
            if waited_s > no_worker_wait_s:
                message = f"no worker serving model {request.model!r} is up (waited {waited_s:.0f} s)"
                expired.append(Expiry(request.request_id, message))
            continue
        free = sum(w.free_slots for w in serving)
        if free == 0:
            continue  # matching the prefix index is the costly part: skip it when nothing is free
        if share is not None and not share.may_take(
            request.tenant, request.model, free, sum(w.info.slots for w in serving)
        ):
            continue
        worker = pick_worker(serving, request.model, prefix_hits(request.prompt))
        if worker is None:
            continue
        if share is not None:
            share.took(request.tenant, request.model)
        assignments.append(Assignment(request.request_id, worker))
        views = [replace(v, inflight=v.inflight + 1) if v is worker else v for v in views]
    return DispatchPlan(tuple(assignments), tuple(expired))
