"""Frozen, typed messages of batch jobs: a job's lines, its progress and the result of each line."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from swarm.shared.types import FinishReason, RawRequest


class BatchState(StrEnum):
    RUNNING = "running"
    DONE = "done"  # every line has a result, text or error
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class BatchLimits:
    max_lines: int = 100_000
    max_bytes: int = 64 * 1024 * 1024  # of the uploaded lines, as sent on the wire
    keep_finished_s: int = 7 * 24 * 3600  # a finished or cancelled job's data expires after this


@dataclass(frozen=True)
class BatchLine:
    """One request of a job; `custom_id` is the caller's name for it, echoed in its result."""

    request: RawRequest
    custom_id: str = ""


@dataclass(frozen=True)
class BatchSummary:
    job_id: str
    state: BatchState
    total: int
    done: int  # lines finished with text
    failed: int  # lines finished with an error
    created_ms: int
    finished_ms: int = 0  # 0 while running
    model: str = ""
    owner: str = ""  # owner digest of the API key that submitted it ("": a coordinator without keys)

    @property
    def finished_lines(self) -> int:
        return self.done + self.failed


@dataclass(frozen=True)
class BatchResult:
    line: int  # 1-based position in the job
    custom_id: str
    text: str = ""
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""  # why the line failed; empty when it has text
