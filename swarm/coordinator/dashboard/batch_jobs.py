"""The dashboard's batch jobs hook: what it shows of a job, and where the jobs come from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol


class BatchJobView(Protocol):
    """What the dashboard shows of a batch job (swarm.shared.batch_types.BatchSummary has these)."""

    @property
    def job_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def total(self) -> int: ...
    @property
    def done(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def owner(self) -> str: ...


# An async callable returning the jobs to show, newest first (e.g. BatchService.list).
BatchJobSource = Callable[[], Awaitable[Sequence[BatchJobView]]]


async def no_batch_jobs() -> Sequence[BatchJobView]:
    """The source when the coordinator runs no batch jobs: there are none."""
    return []
