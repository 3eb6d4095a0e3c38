"""A worker's membership against a real coordinator: the heartbeat pace it is given, and a refusal for good."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swarm.client import SwarmCallError, SwarmClient
from swarm.launch.local_swarm import ManagedProcess, free_port, wait_until
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad
from swarm.worker.membership import Membership
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]

pytestmark = pytest.mark.timeout(90)

# A coordinator whose config no command-line flag sets: the heartbeat pace it hands workers.
COORDINATOR_WITH_INTERVAL = """
import asyncio, sys
from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.process import serve_coordinator
config = CoordinatorConfig(
    listen=sys.argv[1], http="", redis_url=sys.argv[2], advertise=False,
    heartbeat_interval_s=float(sys.argv[3]), heartbeat_ttl_s=3 * float(sys.argv[3]),
)
asyncio.run(serve_coordinator(config))
"""


def answers(address: str) -> bool:
    with SwarmClient(address, retries=0) as client:
        try:
            client.status()
        except SwarmCallError:
            return False
    return True


@pytest.fixture
def coordinator_at_200ms(redis_url: str, tmp_path: Path) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-c", COORDINATOR_WITH_INTERVAL, address, redis_url, "0.2"]
    process = ManagedProcess("coordinator", argv, tmp_path / "coordinator.log").start()
    try:
        wait_until(lambda: answers(address) or not process.alive, 30, f"coordinator on {address}")
        assert process.alive, (tmp_path / "coordinator.log").read_text()[-3000:]
        yield address
    finally:
        process.stop()


def test_a_worker_heartbeats_at_the_interval_the_coordinator_gives(coordinator_at_200ms: str) -> None:
    heartbeats: list[float] = []  # each heartbeat reads the load once

    def load() -> WorkerLoad:
        heartbeats.append(time.monotonic())
        return WorkerLoad()

    async def member_for_six_heartbeats() -> float:
        info = WorkerInfo(WorkerId("paced"), "127.0.0.1:1", "tiny", 512, 1, 1)
        membership = Membership(coordinator_at_200ms, "", info, load)
        stop = asyncio.Event()
        async with membership.joined(stop) as worker_id:
            assert worker_id == "paced"
            async with asyncio.timeout(5):  # at the old fixed 1 s pace, six take 6 s
                while len(heartbeats) < 6:
                    await asyncio.sleep(0.05)
        return membership.interval_s

    assert asyncio.run(member_for_six_heartbeats()) == 0.2


def test_a_heartbeat_loop_that_dies_stops_the_worker_instead_of_leaving_it_unrouted(coordinator_at_200ms: str) -> None:
    def broken_load() -> WorkerLoad:
        raise RuntimeError("the load probe broke")

    async def stopped_by_the_failure() -> bool:
        info = WorkerInfo(WorkerId("broken"), "127.0.0.1:1", "tiny", 512, 1, 1)
        stop, stopped = asyncio.Event(), False
        with pytest.raises(RuntimeError, match="the load probe broke"):  # raised when the body ends
            async with Membership(coordinator_at_200ms, "", info, broken_load).joined(stop):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await stop.wait()
                        stopped = True
        return stopped

    assert asyncio.run(stopped_by_the_failure())


def test_a_worker_refused_for_good_after_a_coordinator_restart_exits_and_says_why(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1, coordinator_args=("--token", "first"), worker_args=("--token", "first"))
    (worker,) = (p for p in swarm.processes.processes if p.name == "worker-0")
    swarm.coordinator.stop()
    swarm.start_coordinator("--token", "second")  # same address and Redis, another join token
    swarm.wait_for_coordinator()
    wait_until(lambda: not worker.alive, 30, "the refused worker to exit")
    assert worker.process is not None and worker.process.returncode not in (0, None)
    assert worker.log_path is not None
    log = worker.log_path.read_text()
    assert "refused this worker's heartbeat: wrong or missing join token" in log
    assert "swarm join: error:" in log
