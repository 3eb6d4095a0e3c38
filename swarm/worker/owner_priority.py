"""`--when idle` CPU weight: the worker's session (autogroup) weighs little while it computes, so the owner goes first.

Linux with autogroups (the default on desktops) shares a core between sessions before it looks at
threads: the engine's SCHED_IDLE threads yield only to the worker's own other threads, and a worker
in a session of its own (a service, `setsid swarm join`, a test's child) still took half of a core
the owner's build wanted. At autogroup nice 10 the session weighs 110 against a default one's 1024.
Not 19 (15 against 1024): on a PC busy with many programs that left the worker's event loop too
little to notice the load, hand its work on or leave in time. Away, with nothing to compute, it
weighs as usual again, so its heartbeats and its exit stay prompt.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

COMPUTING_NICE = 10


class SessionWeight:
    """Sets this worker's autogroup nice: low while it may compute, its first value otherwise."""

    def __init__(self, autogroup: Path = Path("/proc/self/autogroup")) -> None:
        self._autogroup = autogroup
        self._usual = self._read() if self._own_session() else None
        self._low = False

    def _own_session(self) -> bool:
        # In a terminal's session the nice would slow the owner's shell too.
        if os.getsid(0) == os.getpid():
            return True
        log.warning(
            "--when idle: this worker shares a session with other programs, so it cannot lower its CPU weight "
            "against the owner's: it may take up to half of a busy core until it backs off; start it in a "
            "session of its own (setsid swarm join ...) to yield at once"
        )
        return False

    def _read(self) -> int | None:
        try:
            return int(self._autogroup.read_text().split()[-1])  # "/autogroup-123 nice 0"
        except (OSError, ValueError, IndexError):  # a kernel without autogroups: SCHED_IDLE threads are all there is
            log.info("--when idle: no autogroup to lower; its engine threads still run at idle priority")
            return None

    def computing(self, low: bool) -> bool:
        """Low weight while it may compute (serving, backing off); the usual one when away or leaving.

        False where it cannot (not its own session, no autogroups)."""
        if self._usual is None:
            return False
        if low != self._low:
            nice = max(COMPUTING_NICE, self._usual) if low else self._usual
            try:
                self._autogroup.write_text(f"{nice}\n")
            except OSError as exc:
                log.warning("--when idle: could not set its autogroup nice to %d: %s", nice, exc)
                return False
            self._low = low
        return True
