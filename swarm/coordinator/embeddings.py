"""Embeddings: a request's inputs to one worker of its model, and to another when that one fails.

Embeddings are answered whole and computed again at no loss, so they skip the Redis queue and journal
that generations need: the coordinator picks a whole-model worker of the model that is up, not draining
and not kept from work by its owner, the one with the most free slots first (ties: the one given the
fewest embeddings so far), and tries the next on any failure that is not the request's own fault.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable

import grpc

from swarm.coordinator.relay.worker_calls import WorkerCalls
from swarm.shared.embedding_messages import EmbedRequest, EmbedResult
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import WorkerView
from swarm.wire.embedding_convert import embed_request_to_wire, embed_result_from_wire

log = logging.getLogger(__name__)

_CLIENT_FAULTS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE}


class Embeddings:
    ATTEMPTS = 3  # workers tried before the request fails
    TIMEOUT_S = 120.0  # for one worker's answer: 2,048 long inputs on a slow PC take a while

    def __init__(
        self,
        views: Callable[[], list[WorkerView]],
        fresh_views: Callable[[], Awaitable[list[WorkerView]]],
        calls: WorkerCalls,
    ) -> None:
        self._views = views
        self._fresh_views = fresh_views
        self._calls = calls
        self._given: Counter[str] = Counter()  # embedding requests sent to each worker, to spread ties

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """request.model is resolved already; SwarmError when no worker could answer."""
        tried: set[str] = set()
        last_error = ""
        for _ in range(self.ATTEMPTS):
            worker = self._pick(self._views(), request.model, tried)
            if worker is None:  # a worker may have joined since the last registry poll
                worker = self._pick(await self._fresh_views(), request.model, tried)
            if worker is None:
                break
            tried.add(worker.info.worker_id)
            self._given[worker.info.worker_id] += 1
            try:
                response = await self._calls.embed(worker.info.address, embed_request_to_wire(request), self.TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _CLIENT_FAULTS:
                    raise SwarmError(ErrorCode(exc.code().name), exc.details() or "refused by the worker") from exc
                last_error = f"{worker.info.worker_id}: {exc.code().name} {exc.details()}"
                log.warning("embedding %s failed on %s; trying another worker", request.request_id, last_error)
                continue
            return embed_result_from_wire(response)
        if last_error:
            raise SwarmError(ErrorCode.UNAVAILABLE, f"no worker could embed the inputs (last: {last_error})")
        raise SwarmError(
            ErrorCode.UNAVAILABLE, f"no whole-model worker of {request.model!r} is up to embed (pipeline stages cannot)"
        )

    def _pick(self, views: list[WorkerView], model: str, tried: set[str]) -> WorkerView | None:
        able = [
            v
            for v in views
            if v.info.model == model
            and v.info.stage_count == 0
            and not v.info.draft_for  # a draft PC of the same model serves only its workers
            and v.up
            and not v.draining
            and not v.load.away
            and v.info.worker_id not in tried
        ]
        return max(able, key=lambda v: (v.free_slots, -self._given[v.info.worker_id]), default=None)
