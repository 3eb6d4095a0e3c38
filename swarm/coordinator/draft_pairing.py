"""Pure pairing of draft PCs with workers: which draft a worker takes proposals from, and which draft is refused.

A draft PC (`swarm join --draft-for MODEL`) proposes to workers of MODEL that share its vocabulary.
Each worker gets one draft; with several drafts for a model, workers spread over them by a hash of
their id, so a worker keeps its draft while the set of drafts stays the same.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from swarm.shared.types import WorkerInfo, WorkerView
from swarm.shared.vocab_fingerprint import vocab_mismatch


def drafts_for(workers: Iterable[WorkerView], target: WorkerInfo) -> list[WorkerView]:
    """The up drafts that may propose to `target`, by worker id."""
    if not target.takes_requests:
        return []
    return sorted(
        (
            w
            for w in workers
            if w.up
            and not w.draining
            and w.info.draft_for == target.model
            and not vocab_mismatch(w.info.model, w.info.vocab_fingerprint, target.model, target.vocab_fingerprint)
        ),
        key=lambda w: w.info.worker_id,
    )


def paired_draft(workers: Iterable[WorkerView], target: WorkerInfo) -> str:
    """The address of the draft `target` should take proposals from; "" for none."""
    drafts = drafts_for(workers, target)
    if not drafts:
        return ""
    return drafts[zlib.crc32(target.worker_id.encode()) % len(drafts)].info.address


def draft_refusal(workers: Iterable[WorkerView], draft: WorkerInfo) -> str:
    """Why a joining draft is refused ("" if it is not): an up worker of its model has another vocabulary."""
    for w in workers:
        if w.up and w.info.takes_requests and w.info.model == draft.draft_for:
            why = vocab_mismatch(draft.model, draft.vocab_fingerprint, w.info.model, w.info.vocab_fingerprint)
            if why:
                return why
    return ""
