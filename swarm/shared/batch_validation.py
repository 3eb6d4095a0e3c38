"""Checks one line of a batch job as any request is checked, naming the line and the field when it is wrong."""

from __future__ import annotations

from swarm.shared.batch_types import BatchLine
from swarm.shared.validation import REQUEST_ID_PATTERN, InvalidRequest, RequestLimits, validate_request


class InvalidBatchLine(ValueError):
    """A line of a batch job is not a valid request; the message names the line (1-based) and the field."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


def check_batch_line(line: BatchLine, number: int, limits: RequestLimits) -> None:
    try:
        validate_request(line.request, limits)
    except InvalidRequest as exc:
        raise InvalidBatchLine(number, str(exc)) from None
    if line.custom_id and not REQUEST_ID_PATTERN.fullmatch(line.custom_id):
        raise InvalidBatchLine(number, "id: must be 1-64 chars of [A-Za-z0-9._:-]")
    if line.request.request_id:
        raise InvalidBatchLine(number, "request_id: is chosen by the batch (use id for your own name)")
    if line.request.resume_after_tokens:
        raise InvalidBatchLine(number, "resume_after_tokens: must be 0 in a batch")
