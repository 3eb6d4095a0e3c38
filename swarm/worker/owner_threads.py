"""The first step of `--when idle` backing off: as many llama.cpp threads as the cores the owner leaves free.

llama.cpp's threads meet at a barrier every step, so one thread on a core the owner's program also
wants holds all the others back: fewer threads on the free cores go faster than all of them on
contended ones, and leave the owner its cores. Fewer at once; more again only once the PC has left
room for them for a while, so the pauses of a build do not make it flap. Past `--owner-cpu` the
next steps (no new work, hand back) take over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadStep:
    threads: int
    room_since: float | None = None  # when more threads than `threads` first fitted, in the loop's time


def threads_free(most: int, cores: int, others_share: float) -> int:
    """Threads for the cores other processes leave free (one counts as theirs from half of it): 1 to `most`."""
    taken = math.floor(others_share * cores + 0.5)
    return max(1, min(most, cores - taken))


def next_threads(step: ThreadStep, fitting: int, now: float, more_after_s: float) -> ThreadStep:
    """Down to `fitting` at once; up to it only after it has been above the current count for `more_after_s`."""
    if fitting <= step.threads:
        return ThreadStep(fitting)
    since = now if step.room_since is None else step.room_since
    if now - since >= more_after_s:
        return ThreadStep(fitting)
    return ThreadStep(step.threads, since)
