"""`--when idle` CPU weight: the worker's session (autogroup) at the lowest nice, so the owner's programs go first.

Linux with autogroups (the default on desktops) shares a core between sessions before it looks at
threads: the engine's SCHED_IDLE threads yield only to the worker's own other threads, and a worker
in a session of its own (a service, `setsid swarm join`, a test's child) still took half of a core
the owner's build wanted. An autogroup at nice 19 weighs 15 against a default session's 1024.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

LOWEST_NICE = 19


def yield_to_owner(autogroup: Path = Path("/proc/self/autogroup")) -> bool:
    """Lowers this worker's session to the lowest CPU weight; False (and a log line saying why) when it cannot.

    Only a session leader does: in a terminal's session the nice would slow the owner's shell too.
    """
    if os.getsid(0) != os.getpid():
        log.warning(
            "--when idle: this worker shares a session with other programs, so it cannot lower its CPU weight "
            "against the owner's: it may take up to half of a busy core until it backs off; start it in a "
            "session of its own (setsid swarm join ...) to yield at once"
        )
        return False
    try:
        autogroup.write_text(f"{LOWEST_NICE}\n")
    except OSError as exc:  # a kernel without autogroups: the threads' SCHED_IDLE is all there is
        log.info("--when idle: no autogroup to lower (%s); its engine threads still run at idle priority", exc)
        return False
    log.info("--when idle: its session runs at the lowest CPU weight (autogroup nice %d)", LOWEST_NICE)
    return True
