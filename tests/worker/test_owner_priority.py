"""`--when idle`'s CPU weight on the real kernel: a worker leading its own session lowers its autogroup while it
computes and restores it when away; one sharing a session (a terminal's) leaves it alone, so the owner's shell is
not slowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = (
    "from pathlib import Path\n"
    "from swarm.worker.owner_priority import SessionWeight\n"
    "def nice(): return (Path('/proc/self/autogroup').read_text().split() or ['none'])[-1]\n"
    "weight = SessionWeight()\n"
    "low = weight.computing(True), nice()\n"
    "usual = weight.computing(False), nice()\n"
    "print(*low, *usual)\n"
)


def child_says(new_session: bool) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, start_new_session=new_session
    )
    return done.stdout.split()


def session_nice() -> str:
    # Empty in the root autogroup (a session nobody started, e.g. a container's first process).
    return (Path("/proc/self/autogroup").read_text().split() or ["none"])[-1]


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="a kernel without autogroups")
def test_a_session_leader_weighs_little_while_computing_and_a_process_in_anothers_session_changes_nothing() -> None:
    assert child_says(new_session=True) == ["True", "10", "True", "0"]
    ours = session_nice()
    assert child_says(new_session=False) == ["False", ours, "False", ours]
    assert session_nice() == ours  # this session untouched
