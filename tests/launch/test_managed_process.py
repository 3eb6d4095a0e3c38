"""ManagedProcess: its environment (extra variables added, named ones withheld) and its log across restarts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm.launch.local_swarm import ManagedProcess

pytestmark = pytest.mark.timeout(30)


def test_a_child_gets_the_extra_variables_and_not_the_withheld_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_TEST_WITHHELD", "from the parent")
    monkeypatch.setenv("SWARM_TEST_KEPT", "kept")
    out = tmp_path / "env.txt"
    script = 'echo "${SWARM_TEST_WITHHELD:-unset} ${SWARM_TEST_KEPT:-unset} ${SWARM_TEST_EXTRA:-unset}" > "$0"'
    child = ManagedProcess(
        "env-probe",
        ["sh", "-c", script, str(out)],
        env={"SWARM_TEST_EXTRA": "extra"},
        unset_env=("SWARM_TEST_WITHHELD",),
    ).start()
    assert child.process is not None and child.process.wait(10) == 0
    assert out.read_text().split() == ["unset", "kept", "extra"]
    assert os.environ["SWARM_TEST_WITHHELD"] == "from the parent"  # only the child's copy lost it


def test_a_process_restarted_many_times_appends_to_one_log_and_leaves_no_file_open(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = ManagedProcess("echo", ["sh", "-c", "echo run"], log_path=log)
    open_before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        child.start()
        assert child.process is not None and child.process.wait(10) == 0
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert log.read_text().split() == ["run"] * 5
