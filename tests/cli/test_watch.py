"""`swarm status --watch` and `swarm top` as a user runs them: real subprocesses against a real swarm."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from swarm.cli.watch_commands import top_table
from swarm.shared.types import SwarmStatus, WorkerInfo, WorkerLoad, WorkerState, WorkerView
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]

pytestmark = pytest.mark.timeout(60)


def run_swarm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_status_watch_prints_the_table_count_times(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    (worker_id,) = swarm.up_workers()
    done = run_swarm("status", "--coordinator", swarm.address, "--watch", "--interval", "0.2", "--count", "3")
    assert done.returncode == 0, done.stderr
    frames = [f for f in done.stdout.split("\n\n") if "WORKER" in f]
    assert len(frames) == 3
    assert all(worker_id in frame and "1 of 1 workers up" in done.stdout for frame in frames)
    assert "\x1b[" not in done.stdout  # not a terminal: frames follow each other instead of redrawing


def test_top_shows_workers_and_ctrl_c_stops_it_cleanly(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=2)
    worker_ids = swarm.up_workers()
    top = subprocess.Popen(
        [sys.executable, "-m", "swarm", "top", "--coordinator", swarm.address, "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert top.stdout is not None
        first = top.stdout.readline()
        assert first.startswith("swarm top: 2 of 2 workers up"), first
        seen = first
        while not all(w in seen for w in worker_ids):
            seen += top.stdout.readline()
        top.send_signal(signal.SIGINT)
        _, err = top.communicate(timeout=15)
    finally:
        top.kill()
    assert top.returncode == 0, err
    assert "Traceback" not in err
    assert "HEARTBEAT" in seen


def test_status_watch_survives_an_unreachable_coordinator() -> None:
    done = run_swarm("status", "--coordinator", "127.0.0.1:1", "--watch", "--interval", "0.1", "--count", "2")
    assert done.returncode == 0
    assert done.stdout.count("cannot reach coordinator 127.0.0.1:1") == 2


def view(worker_id: str, busy: int, rate: float, up: bool = True) -> WorkerView:
    info = WorkerInfo(worker_id, "10.0.0.2:7000", "tiny", 512, 4, 1, "pc2")
    load = WorkerLoad(slots_busy=busy, tokens_per_second=rate, rss_bytes=300 << 20)
    return WorkerView(info, load, WorkerState.UP if up else WorkerState.DOWN, 0.4)


def test_top_sorts_the_busiest_first() -> None:
    status = SwarmStatus(
        [view("idle", 0, 0.0), view("fast", 2, 40.0), view("slow", 2, 10.0), view("full", 4, 5.0)], 2, "tiny"
    )
    lines = top_table(status).splitlines()
    assert lines[0] == "swarm top: 4 of 4 workers up, 8/16 slots busy, 55.0 tok/s, 2 queued"
    order = [line.split()[0] for line in lines[3:]]
    assert order == ["full", "fast", "slow", "idle"]
    assert "300.0 MiB" in lines[3] and "100%" in lines[3]
