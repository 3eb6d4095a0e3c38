"""Pure routing decisions: which healthy worker takes a request, and which model is the default."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from swarm.shared.types import WorkerView


def candidates(workers: Iterable[WorkerView], model: str) -> list[WorkerView]:
    """Workers that are up and take requests for the model (whole or first stage), busy or not; a worker its
    owner keeps from new work (paused, outside its hours) takes none."""
    return [
        w
        for w in workers
        if w.up and not w.draining and not w.load.away and w.info.model == model and w.info.takes_requests
    ]


# A shared prefix shorter than this is not worth routing for (about a dozen tokens).
MIN_AFFINITY_CHARS = 48
# How much busier (fraction of slots) a worker holding the prefix may be than the least-loaded one.
AFFINITY_LOAD_SLACK = 0.5


def _load(worker: WorkerView) -> float:
    return worker.inflight / worker.info.slots


def pick_worker(
    workers: Iterable[WorkerView], model: str, prefix_hits: Mapping[str, int] | None = None
) -> WorkerView | None:
    """The up worker of the model with a free slot that should take a request, or None if all are full.

    Prefix affinity first: the worker whose KV cache holds the longest prefix of the
    prompt (prefix_hits: worker id -> shared characters) wins while its load is within
    AFFINITY_LOAD_SLACK of the least-loaded worker's. Otherwise the least-loaded one.

    Load is the fraction of slots in use, so a big worker is not starved by a small
    idle one; ties go to the larger worker, then to the one given the fewest requests
    (so an idle swarm still spreads its work), then to the worker id for stability.
    """
    free = [w for w in candidates(workers, model) if w.free_slots > 0]
    if not free:
        return None
    least = min(free, key=lambda w: (_load(w), -w.info.slots, w.assigned, w.info.worker_id))
    if prefix_hits:
        holder = max(free, key=lambda w: (prefix_hits.get(w.info.worker_id, 0), -_load(w)))
        shared = prefix_hits.get(holder.info.worker_id, 0)
        if shared >= MIN_AFFINITY_CHARS and _load(holder) <= _load(least) + AFFINITY_LOAD_SLACK:
            return holder
    return least


def default_model(workers: Iterable[WorkerView], configured: str | None) -> str | None:
    """The configured default model, else the model most up workers serve (ties: by name)."""
    if configured:
        return configured
    counts = Counter(w.info.model for w in workers if w.up and w.info.takes_requests)
    if not counts:
        return None
    return min(counts, key=lambda m: (-counts[m], m))
