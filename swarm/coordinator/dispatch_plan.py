"""The pure dispatch decision: which waiting request goes to which worker, and which waited too long."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from swarm.coordinator.fairness.slot_share import SlotShare
from swarm.coordinator.routing import candidates, pick_worker
from swarm.shared.errors import ErrorCode
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
    code: ErrorCode = ErrorCode.UNAVAILABLE  # UNAVAILABLE: a retry may succeed (its pieces are kept for it)


@dataclass(frozen=True)
class ModelLoads:
    """The models the fleet loads on demand (planned), and how long a request for one no worker serves waits."""

    planned: frozenset[str] = frozenset()
    wait_s: float = 0.0  # config.model_load_wait_s
    too_large: frozenset[str] = frozenset()  # planned models no PC that offered can hold whole: never loaded


NO_LOADS = ModelLoads()


def no_worker_expiry(
    request: WaitingRequest, now_ms: int, no_worker_wait_s: float, loads: ModelLoads = NO_LOADS
) -> Expiry | None:
    """Whether a request no worker of its model is up for has waited too long (None: it waits on).

    A planned model is being loaded for it (the fleet moves a node to it): it waits loads.wait_s,
    unless no PC can ever hold the model, which fails it at once. Any other model waits
    no_worker_wait_s for a worker to join.
    """
    waited_s = (now_ms - request.waiting_since_ms) / 1000
    model = request.model
    if model in loads.too_large:
        message = (
            f"model {model!r} fits no PC of this swarm whole (with its KV cache): join a PC with more memory, "
            "or serve it as pipeline stages (swarm split)"
        )
        return Expiry(request.request_id, message, ErrorCode.FAILED_PRECONDITION)
    if model in loads.planned:
        if waited_s <= loads.wait_s:
            return None
        return Expiry(request.request_id, f"model {model!r} is still loading (waited {waited_s:.0f} s); retry shortly")
    if waited_s <= no_worker_wait_s:
        return None
    return Expiry(request.request_id, f"no worker serving model {model!r} is up (waited {waited_s:.0f} s)")


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
