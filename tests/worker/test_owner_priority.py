"""`--when idle`'s CPU weight on the real kernel: a worker leading its own session lowers its autogroup; one sharing
a session (a terminal's) leaves it alone, so the owner's shell is not slowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = (
    "from pathlib import Path\n"
    "from swarm.worker.owner_priority import yield_to_owner\n"
    "print(yield_to_owner(), Path('/proc/self/autogroup').read_text().split()[-1])\n"
)


def child_says(new_session: bool) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, start_new_session=new_session
    )
    lowered, nice = done.stdout.split()
    return lowered, nice


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="a kernel without autogroups")
def test_a_session_leader_lowers_its_autogroup_and_a_process_in_anothers_session_does_not() -> None:
    assert child_says(new_session=True) == ("True", "19")
    session_nice = Path("/proc/self/autogroup").read_text().split()[-1]
    assert child_says(new_session=False) == ("False", session_nice)
    assert Path("/proc/self/autogroup").read_text().split()[-1] == session_nice  # this session untouched
