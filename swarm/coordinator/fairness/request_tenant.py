"""Whose a request is, for fair queuing and usage: filled from the caller's key when it is accepted."""

from __future__ import annotations

from dataclasses import replace

from swarm.coordinator.fairness.queue_tags import BATCH, INTERACTIVE
from swarm.shared.types import GenerationRequest
from swarm.shared.validation import BATCH_REQUEST_ID_PREFIX


def with_tenant(request: GenerationRequest, owner: str) -> GenerationRequest:
    """The request with its tenant, priority class and weight; owner: its key's owner digest ("" without keys).

    A static key's tenant is named by its digest, never by the secret; batch lines (their ids start
    with BATCH_REQUEST_ID_PREFIX) are queued in the batch class.
    """
    batch = request.request_id.startswith(BATCH_REQUEST_ID_PREFIX)
    return replace(
        request, tenant=f"key-{owner[:8]}" if owner else "", priority=BATCH if batch else INTERACTIVE, weight=1.0
    )
