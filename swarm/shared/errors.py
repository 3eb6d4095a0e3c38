"""SwarmError: a failure with a status code that every wire (gRPC, HTTP) can express precisely."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Names match grpc.StatusCode so servicers can translate by name."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAVAILABLE = "UNAVAILABLE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    CANCELLED = "CANCELLED"
    INTERNAL = "INTERNAL"


class SwarmError(Exception):
    def __init__(self, code: ErrorCode, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s  # how soon a refused (RESOURCE_EXHAUSTED) call may succeed; None: unknown

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"
