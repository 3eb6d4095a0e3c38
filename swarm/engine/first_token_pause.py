"""FirstTokenPause: after a round that gave a request its first token, the engine waits a moment before its
next step, so that the processes carrying that token to the client find the cores free.

On a small PC the next step's llama.cpp threads take every core at once, and a process woken on a busy
core may wait out the running thread's time slice (the EEVDF scheduler does not preempt it at once). The
first token then waits that long at each process it passes (the worker's event loop, the coordinator,
Redis, the client): measured on 2 cores, 4.2-4.4 ms at the p95 of each of those hops without a pause,
0.5-1.0 ms with one of 5 ms (docs/benchmarks.md, "Time to first token"). Only an engine whose threads
take every core it may use pauses, and only for first tokens: a stream's pace is set by the step, not
by one hop. The pause ends early when new work arrives, and it is taken at most once per
`seconds / share`, so a flood of one-token requests loses at most `share` of the engine's time; a
request of a hundred tokens or more costs the others well under 1 %.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class FirstTokenPause:
    seconds: float = 0.005  # 0 turns the pause off
    share: float = 0.1  # of the engine's time that pauses may take, at most
    _due: bool = field(default=False, init=False)
    _last: float = field(default=-float("inf"), init=False)  # monotonic time of the last pause taken

    def __post_init__(self) -> None:
        if not 0 <= self.seconds <= 0.1 or not 0 < self.share <= 1:
            raise ValueError("a first-token pause needs 0 <= seconds <= 0.1 and 0 < share <= 1")

    def note_first_token(self) -> None:
        self._due = True

    def skip(self) -> None:
        """No pause is needed for the first tokens out so far (the engine is idle, or leaves cores free)."""
        self._due = False

    def take(self, now: float | None = None) -> float:
        """Seconds to wait before the next step: the pause if a first token went out since the last call and
        the last pause was long enough ago, else 0."""
        due, self._due = self._due, False
        now = time.monotonic() if now is None else now
        if not due or self.seconds == 0 or now - self._last < self.seconds / self.share:
            return 0.0
        self._last = now
        return self.seconds
