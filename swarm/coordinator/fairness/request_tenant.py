"""Whose a request is, for fair queuing and usage: filled from the caller's key when it is accepted."""

from __future__ import annotations

from dataclasses import replace

from swarm.coordinator.fairness.queue_tags import BATCH
from swarm.coordinator.tenancy.caller import Caller
from swarm.shared.types import GenerationRequest
from swarm.shared.validation import BATCH_REQUEST_ID_PREFIX


def with_tenant(request: GenerationRequest, caller: Caller) -> GenerationRequest:
    """The request with its tenant (the caller's key name: a static key's is made of its digest, never the
    secret; "" without keys), priority class and weight; batch lines (their ids start with
    BATCH_REQUEST_ID_PREFIX) are queued in the batch class at least."""
    batch = request.request_id.startswith(BATCH_REQUEST_ID_PREFIX)
    priority = max(caller.priority, BATCH) if batch else caller.priority
    return replace(request, tenant=caller.name, priority=priority, weight=caller.weight)
