"""The backoff policy of `--when idle`: serving, backing off, away; a pure step from one load sample to the next state.

One busy sample stops new work (backing off); a second in a row sends the running work to other
workers (away). Back to serving only after `quiet_s` with no busy sample at all, so a PC whose owner
pauses for a moment between builds does not get its work pulled back and forth.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    SERVING = "serving"
    BACKING_OFF = "backing off"  # takes no new work; what runs goes on
    AWAY = "away"  # what ran went to other workers; waits for the PC to be quiet


@dataclass(frozen=True)
class BackoffPolicy:
    busy_samples: int = 2  # busy samples in a row that send running work away
    quiet_s: float = 20.0  # how long the PC must be quiet before an away worker serves again (target: within 30 s)
    more_threads_after_s: float = 5.0  # how long cores must stay free before it runs more threads on them again


@dataclass(frozen=True)
class BackoffState:
    phase: Phase = Phase.SERVING
    reason: str = ""  # why it is backing off or away ("" while serving)
    busy_in_a_row: int = 0
    quiet_since: float | None = None  # monotonic time of the first quiet sample since the last busy one


SERVING = BackoffState()


def next_state(policy: BackoffPolicy, state: BackoffState, busy: str, now: float) -> BackoffState:
    """The state after a sample taken at `now`; `busy` says why the owner counts as busy ("" when not)."""
    if busy:
        in_a_row = state.busy_in_a_row + 1
        if state.phase is Phase.AWAY or in_a_row >= policy.busy_samples:
            return BackoffState(Phase.AWAY, busy, in_a_row, None)
        return BackoffState(Phase.BACKING_OFF, busy, in_a_row, None)
    if state.phase is Phase.BACKING_OFF:  # nothing was handed away yet: serve on at once
        return SERVING
    if state.phase is Phase.AWAY:
        quiet_since = now if state.quiet_since is None else state.quiet_since
        if now - quiet_since >= policy.quiet_s:
            return SERVING
        return BackoffState(Phase.AWAY, state.reason, 0, quiet_since)
    return SERVING
