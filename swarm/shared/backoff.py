"""Capped exponential backoff with full jitter, for every retry loop that talks to a remote peer."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(first_s: float = 0.2, cap_s: float = 5.0) -> Iterator[float]:
    """Endless delays: uniform in [0, min(cap, first * 2**n)], so peers retrying together spread out."""
    attempt = 0
    while True:
        yield random.uniform(0, min(cap_s, first_s * 2**attempt))
        attempt += 1
