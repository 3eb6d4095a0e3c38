"""BatchService: what the coordinator does for batch clients (submit, progress, cancel, results), free of the wire."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from swarm.coordinator.batch.store import BatchStore
from swarm.coordinator.batch.submitter import Submitter
from swarm.coordinator.tenancy.caller import OPEN_ACCESS, OPEN_CALLER, Access, Caller
from swarm.shared.batch_types import BatchLimits, BatchLine, BatchResult, BatchState, BatchSummary
from swarm.shared.batch_validation import InvalidBatchLine, check_batch_line
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.validation import RequestLimits

YIELD_EVERY = 1000  # lines checked or encoded between yields to the event loop
_RESULTS_CHUNK = 500  # lines read from Redis at a time while streaming results


def new_job_id() -> str:
    return "job-" + secrets.token_hex(6)


class BatchService:
    def __init__(self, store: BatchStore, limits: BatchLimits, request_limits: RequestLimits) -> None:
        self._store = store
        self._limits = limits
        self._request_limits = request_limits

    def check_upload(self, lines: int, size_bytes: int) -> None:
        """Called as an upload arrives, so an oversized job is refused before it is all in memory."""
        if lines > self._limits.max_lines:
            raise SwarmError(ErrorCode.RESOURCE_EXHAUSTED, f"a job holds at most {self._limits.max_lines} lines")
        if size_bytes > self._limits.max_bytes:
            raise SwarmError(ErrorCode.RESOURCE_EXHAUSTED, f"a job holds at most {self._limits.max_bytes} bytes")

    async def submit(self, model: str, lines: list[BatchLine], access: Access = OPEN_ACCESS) -> BatchSummary:
        """Stores the job as the caller's: only it (and admin keys) can see, cancel or read it, and its lines
        run as the caller's batch work."""
        if not lines:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, "lines: a job needs at least one line")
        self.check_upload(len(lines), 0)
        seeded: list[BatchLine] = []
        for number, line in enumerate(lines, start=1):
            try:
                check_batch_line(line, number, self._request_limits)
            except InvalidBatchLine as exc:
                raise SwarmError(ErrorCode.INVALID_ARGUMENT, str(exc)) from None
            # A line without a seed gets one now, so a line run again after a crash samples the same text.
            if line.request.seed is None:
                line = replace(line, request=replace(line.request, seed=_new_seed()))
            seeded.append(line)
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a big job must not hold up the token streams this loop relays
        return await self._store.create(new_job_id(), model, seeded, _now_ms(), Submitter.of(access))

    async def get(self, job_id: str, caller: Caller = OPEN_CALLER) -> BatchSummary:
        """NOT_FOUND for another key's job too: a key cannot even learn that it exists."""
        summary = await self._store.summary(job_id)
        if summary is None or not visible(summary, caller):
            raise _unknown(job_id)
        return summary

    async def list(self, caller: Caller = OPEN_CALLER) -> list[BatchSummary]:
        return [s for s in await self._store.summaries() if visible(s, caller)]

    async def cancel(self, job_id: str, caller: Caller = OPEN_CALLER) -> BatchSummary:
        await self.get(job_id, caller)
        summary = await self._store.cancel(job_id, _now_ms())
        if summary is None:
            raise _unknown(job_id)
        return summary

    async def results(self, job_id: str, partial: bool, caller: Caller = OPEN_CALLER) -> AsyncIterator[BatchResult]:
        """The results in input order; only the finished lines' when `partial`."""
        summary = await self.get(job_id, caller)
        if summary.state == BatchState.RUNNING and not partial:
            raise SwarmError(
                ErrorCode.FAILED_PRECONDITION,
                f"job {job_id} is still running ({summary.finished_lines} of {summary.total} lines finished); "
                "ask for partial results or wait",
            )
        for start in range(0, summary.total, _RESULTS_CHUNK):
            for result in await self._store.results(job_id, start, min(_RESULTS_CHUNK, summary.total - start)):
                if result is not None:
                    yield result


def visible(summary: BatchSummary, caller: Caller) -> bool:
    """An admin key sees every job; any other key only its own."""
    return caller.admin or summary.owner == caller.owner


def _unknown(job_id: str) -> SwarmError:
    return SwarmError(ErrorCode.NOT_FOUND, f"job_id: no batch job {job_id!r} (finished jobs expire)")


def _new_seed() -> int:
    return secrets.randbits(32)


def _now_ms() -> int:
    return int(time.time() * 1000)
