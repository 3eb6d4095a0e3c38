"""The shared-secret check on gRPC calls: `authorization: Bearer <token>` metadata."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable
from typing import Any

import grpc

log = logging.getLogger(__name__)

AUTH_HEADER = "authorization"


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return ((AUTH_HEADER, f"Bearer {token}"),) if token else ()


def token_matches(metadata: Iterable[Any] | None, expected: str | None) -> bool:
    """True when no token is required, or the call carries exactly the expected one."""
    if not expected:
        return True
    for key, value in metadata or ():
        if key == AUTH_HEADER and isinstance(value, str):
            return hmac.compare_digest(value.encode(), f"Bearer {expected}".encode())
    return False


class TokenGate:
    """Refuses gRPC calls without the shared token (UNAUTHENTICATED), logging refusals at most once a second

    so a misconfigured fleet cannot flood the log."""

    def __init__(self, token: str, what: str) -> None:
        self._token = token
        self._what = what  # e.g. "worker call", for the log line
        self._last_log = 0.0

    async def check(self, context: Any) -> None:
        if token_matches(context.invocation_metadata(), self._token):
            return
        if time.monotonic() - self._last_log > 1.0:
            self._last_log = time.monotonic()
            log.warning("refused a %s from %s: wrong or missing join token", self._what, context.peer())
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong or missing join token (--token)")
