"""The shared-secret check on gRPC calls: `authorization: Bearer <token>` metadata."""

from __future__ import annotations

import hashlib
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
            # Fixed-length digests: the comparison's time does not even tell the token's length.
            presented = hashlib.sha256(value.encode()).digest()
            return hmac.compare_digest(presented, hashlib.sha256(f"Bearer {expected}".encode()).digest())
    return False


class RefusalLog:
    """Logs refused calls (peer address and reason, never a secret) at most once a second,

    so a misconfigured fleet or client cannot flood the log."""

    def __init__(self) -> None:
        self._last = 0.0

    def warn(self, what: str, peer: str | None, reason: str) -> None:
        now = time.monotonic()
        if now - self._last > 1.0:
            self._last = now
            log.warning("refused a %s from %s: %s", what, peer or "an unknown peer", reason)


class TokenGate:
    """Refuses gRPC calls without the shared token (UNAUTHENTICATED), logging the refusals."""

    def __init__(self, token: str, what: str) -> None:
        self._token = token
        self._what = what  # e.g. "worker call", for the log line
        self._refusals = RefusalLog()

    async def check(self, context: Any) -> None:
        if token_matches(context.invocation_metadata(), self._token):
            return
        self._refusals.warn(self._what, context.peer(), "wrong or missing join token")
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong or missing join token (--token)")
