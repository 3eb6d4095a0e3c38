"""Pure routing decisions: which healthy worker takes a request, and which model is the default."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from swarm.shared.types import WorkerView


def candidates(workers: Iterable[WorkerView], model: str) -> list[WorkerView]:
    """Workers that are up and serve the model, busy or not."""
    return [w for w in workers if w.up and w.info.model == model]


def pick_worker(workers: Iterable[WorkerView], model: str) -> WorkerView | None:
    """The least-loaded up worker of the model with a free slot, or None if all are full.

    Load is the fraction of slots in use, so a big worker is not starved by a small
    idle one; ties go to the larger worker, then to the one given the fewest requests
    (so an idle swarm still spreads its work), then to the worker id for stability.
    """
    free = [w for w in candidates(workers, model) if w.free_slots > 0]
    if not free:
        return None
    return min(free, key=lambda w: (w.inflight / w.info.slots, -w.info.slots, w.assigned, w.info.worker_id))


def default_model(workers: Iterable[WorkerView], configured: str | None) -> str | None:
    """The configured default model, else the model most up workers serve (ties: by name)."""
    if configured:
        return configured
    counts = Counter(w.info.model for w in workers if w.up)
    if not counts:
        return None
    return min(counts, key=lambda m: (-counts[m], m))
