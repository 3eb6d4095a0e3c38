"""The fixtures' teardown check: a swarm process that ignores SIGTERM fails the test, naming it and its log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from swarm.launch.local_swarm import LocalSwarm, ManagedProcess, wait_until
from tests.conftest import stop_cleanly

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('stuck in shutdown', flush=True)\n"
    "time.sleep(60)\n"
)


def launch(processes: LocalSwarm, name: str, code: str) -> ManagedProcess:
    assert processes.log_dir is not None
    process = ManagedProcess(name, [sys.executable, "-c", code], processes.log_dir / f"{name}.log").start()
    processes.processes.append(process)
    return process


def test_a_process_that_ignores_sigterm_fails_the_test_with_its_name_and_log(tmp_path: Path) -> None:
    processes = LocalSwarm(log_dir=tmp_path, stop_grace_s=0.5)
    stubborn = launch(processes, "stubborn-coordinator", IGNORES_SIGTERM)
    launch(processes, "polite-worker", "import time; time.sleep(60)")
    wait_until(lambda: "stuck" in stubborn.log_tail(), 10, "the stubborn process ignoring SIGTERM")
    with pytest.raises(pytest.fail.Exception) as failure:
        stop_cleanly(processes)
    message = str(failure.value)
    assert "stubborn-coordinator" in message and "stuck in shutdown" in message
    assert "polite-worker" not in message
    assert not stubborn.alive


def test_processes_that_leave_on_sigterm_pass(tmp_path: Path) -> None:
    processes = LocalSwarm(log_dir=tmp_path, stop_grace_s=5)
    launch(processes, "polite-worker", "import time; time.sleep(60)")
    stop_cleanly(processes)
