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
class ModelLoads:
    """The models the fleet loads on demand (planned), and how long a request for one no worker serves waits.

    Whether a model can be loaded at all (a PC holds it) is decided when its request arrives (the service
    refuses it with FAILED_PRECONDITION): a planned model is re-planned onto the PCs left, as pipeline stages
    where none holds it whole, so one whose workers all left is waited for here like one asked for anew.
    """

    planned: frozenset[str] = frozenset()
    wait_s: float = 0.0  # config.model_load_wait_s


NO_LOADS = ModelLoads()


def no_worker_expiry(
    request: WaitingRequest, now_ms: int, no_worker_wait_s: float, loads: ModelLoads = NO_LOADS
) -> Expiry | None:
    """Whether a request no worker of its model is up for has waited too long (None: it waits on).

    For a planned model the fleet is loading it (moving a node to it): it waits loads.wait_s. Any
    other model waits no_worker_wait_s for a worker to join.
    """
    waited_s = (now_ms - request.waiting_since_ms) / 1000
    if request.model in loads.planned:
        if waited_s <= loads.wait_s:
            return None
        message = f"model {request.model!r} is still loading (waited {waited_s:.0f} s); retry shortly"
        return Expiry(request.request_id, message)
    if waited_s <= no_worker_wait_s:
        return None
    return Expiry(request.request_id, f"no worker serving model {request.model!r} is up (waited {waited_s:.0f} s)")


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
    loads: ModelLoads = NO_LOADS,
) -> DispatchPlan:
    """Hands waiting requests (in queue order) to workers with free slots, each pick counting as load.

    share: the slot rule of fair queuing (fairness.slot_share); None lets any request take any slot.

    A request whose model has no worker up waits; past no_worker_wait_s it expires, or past
    loads.wait_s when its model is planned and loading (no_worker_expiry). One whose workers
    are all busy waits without limit: the queue bound is the back-pressure.
    prefix_hits(prompt) gives, per worker id, the characters of the prompt its KV cache holds.
    """
    views = list(workers)
    assignments: list[Assignment] = []
    expired: list[Expiry] = []
    for request in waiting:
        serving = candidates(views, request.model)
        if not serving:
            expiry = no_worker_expiry(request, now_ms, no_worker_wait_s, loads)
            if expiry is not None:
                expired.append(expiry)
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
