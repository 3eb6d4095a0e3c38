"""stop_if_cancelled: makes a background loop honour a cancel that a library swallowed.

Python 3.11's asyncio.wait_for (used inside redis-py) loses a cancel that lands as the
awaited call completes. A loop that goes on after that makes its owner's shutdown hang
until the process is killed, so every paced loop that awaits Redis calls this once a turn.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Raises CancelledError if this task was cancelled, even if the cancel was swallowed on the way."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
