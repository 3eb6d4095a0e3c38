"""Waiting out a Redis restart: an action retried while Redis is away, for a bounded time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from swarm.shared.backoff import backoff_delays
from swarm.shared.cancellation import stop_if_cancelled

log = logging.getLogger(__name__)
T = TypeVar("T")


async def patiently(action: Callable[[], Awaitable[T]], patience_s: float) -> T:
    """Runs a Redis action, retrying while Redis is away for up to patience_s; then raises its error."""
    try:
        return await action()  # the relay's per-piece path: nothing to set up unless it fails
    except (RedisError, ConnectionError) as exc:
        log.warning("Redis failed (%s); trying again for up to %.0f s", exc, patience_s)
    deadline = time.monotonic() + patience_s
    delays = backoff_delays(first_s=0.1, cap_s=2.0)
    while True:
        stop_if_cancelled()
        await asyncio.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
        try:
            return await action()
        except (RedisError, ConnectionError):
            if time.monotonic() >= deadline:
                raise
