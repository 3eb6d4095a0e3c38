"""The shared-secret check on gRPC calls: `authorization: Bearer <token>` metadata."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

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
