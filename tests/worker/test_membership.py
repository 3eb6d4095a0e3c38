"""A worker's membership against a real coordinator: the heartbeat pace it is given, refusals for good, and its
identity: joining again when forgotten, stopping when displaced, waiting for an id still held."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from swarm.client import SwarmClient
from swarm.coordinator import redis_keys as keys
from swarm.coordinator.registry import WorkerRegistry
from swarm.launch.local_swarm import ManagedProcess, free_port, wait_until
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad
from swarm.worker.membership import JoinRefused, Membership
from tests.conftest import RunningSwarm, coordinator_answers

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


@pytest.fixture
def coordinator_at_200ms(redis_url: str, tmp_path: Path) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-c", COORDINATOR_WITH_INTERVAL, address, redis_url, "0.2"]
    process = ManagedProcess("coordinator", argv, tmp_path / "coordinator.log").start()
    try:
        wait_until(lambda: coordinator_answers(address) or not process.alive, 30, f"coordinator on {address}")
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


def status_of(address: str) -> dict[str, tuple[str, bool]]:
    """worker id -> (address, up), as the coordinator reports them."""
    with SwarmClient(address, retries=0) as client:
        return {w.info.worker_id: (w.info.address, w.up) for w in client.status().workers}


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_a_worker_the_coordinator_forgot_joins_again_and_heartbeats_with_its_new_secret(
    coordinator_at_200ms: str, redis_url: str
) -> None:
    heartbeats = [0]

    def load() -> WorkerLoad:
        heartbeats[0] += 1
        return WorkerLoad()

    async def forgotten_then_back() -> None:
        info = WorkerInfo(WorkerId("forgotten"), "127.0.0.1:1", "tiny", 512, 1, 1)
        membership = Membership(coordinator_at_200ms, "", info, load)
        stop = asyncio.Event()
        async with membership.joined(stop):
            await until(lambda: heartbeats[0] >= 2, 5, "two heartbeats")
            redis = Redis.from_url(redis_url, decode_responses=True)
            await WorkerRegistry(redis, 0.6).forget(WorkerId("forgotten"))  # as a coordinator that lost its Redis
            await redis.aclose()
            await until(lambda: "forgotten" in status_of(coordinator_at_200ms), 10, "the worker to join again")
            seen = heartbeats[0]
            await until(lambda: heartbeats[0] >= seen + 5, 5, "five heartbeats after the rejoin")
            assert not stop.is_set() and membership.refused is None
            assert status_of(coordinator_at_200ms)["forgotten"] == ("127.0.0.1:1", True)
        assert "forgotten" not in status_of(coordinator_at_200ms)  # its leave carried its new secret

    asyncio.run(forgotten_then_back())


def test_a_worker_whose_id_another_took_while_it_was_silent_stops_and_says_why(
    coordinator_at_200ms: str, redis_url: str
) -> None:
    async def displaced() -> None:
        info = WorkerInfo(WorkerId("twin"), "127.0.0.1:1", "tiny", 512, 1, 1)
        membership = Membership(coordinator_at_200ms, "", info, WorkerLoad)
        stop = asyncio.Event()
        with pytest.raises(JoinRefused, match=r"worker_secret: .*another worker holds this id now"):
            async with membership.joined(stop):
                redis = Redis.from_url(redis_url, decode_responses=True)
                await redis.delete(keys.worker_claim_key("twin"))  # as if it had been silent for the TTL
                await redis.aclose()
                newcomer = Membership(coordinator_at_200ms, "", replace(info, address="127.0.0.1:2"), WorkerLoad)
                assert await newcomer.join() == "twin"
                await newcomer.close()
                async with asyncio.timeout(5):
                    await stop.wait()
        assert membership.refused is not None
        assert status_of(coordinator_at_200ms)["twin"][0] == "127.0.0.1:2"  # the refused one did not leave it

    asyncio.run(displaced())


def test_a_worker_joining_under_a_live_id_waits_until_its_holder_is_silent_for_the_ttl(
    coordinator_at_200ms: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def held_then_joined() -> float:
        info = WorkerInfo(WorkerId("restarted"), "127.0.0.1:1", "tiny", 512, 1, 1)
        previous = Membership(coordinator_at_200ms, "", info, WorkerLoad)  # joins, then dies without leaving
        await previous.join()
        await previous.close()
        held_since = time.monotonic()
        successor = Membership(coordinator_at_200ms, "", replace(info, address="127.0.0.1:2"), WorkerLoad)
        async with asyncio.timeout(10):
            await successor.join()
        await successor.close()
        return time.monotonic() - held_since

    with caplog.at_level(logging.WARNING, logger="swarm.worker.membership"):
        waited_s = asyncio.run(held_then_joined())
    assert waited_s > 0.5  # the TTL is 0.6 s
    assert "'restarted' belongs to a worker that heartbeated in the last 0.6 s" in caplog.text
    assert status_of(coordinator_at_200ms)["restarted"][0] == "127.0.0.1:2"


def test_a_worker_joins_through_the_first_of_its_coordinators_that_answers(
    coordinator_at_200ms: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with socket.create_server(("127.0.0.1", 0)) as hung:  # accepts connections, never answers: a hung coordinator
        hung_address = f"127.0.0.1:{hung.getsockname()[1]}"
        heartbeats = [0]

        def load() -> WorkerLoad:
            heartbeats[0] += 1
            return WorkerLoad()

        async def joined_through_the_live_one() -> str:
            info = WorkerInfo(WorkerId("several"), "127.0.0.1:1", "tiny", 512, 1, 1)
            membership = Membership([dead, hung_address, coordinator_at_200ms], "", info, load)
            async with asyncio.timeout(15), membership.joined(asyncio.Event()) as worker_id:
                assert worker_id == "several"
                await until(lambda: heartbeats[0] >= 3, 5, "three heartbeats")
                assert status_of(coordinator_at_200ms)["several"][1]
                return membership.coordinator

        with caplog.at_level(logging.WARNING, logger="swarm.worker.membership"):
            assert asyncio.run(joined_through_the_live_one()) == coordinator_at_200ms
    assert f"cannot join coordinator {dead} (UNAVAILABLE); trying {hung_address} in 0.0 s" in caplog.text
    assert f"cannot join coordinator {hung_address} (DEADLINE_EXCEEDED); trying {coordinator_at_200ms}" in caplog.text


def test_a_dns_name_of_the_coordinators_is_a_worker_s_coordinator_too(coordinator_at_200ms: str) -> None:
    async def joined() -> str | None:
        info = WorkerInfo(WorkerId("by-name"), "127.0.0.1:1", "tiny", 512, 1, 1)
        port = coordinator_at_200ms.rpartition(":")[2]
        async with (
            asyncio.timeout(10),
            Membership(f"dns:///localhost:{port}", "", info, WorkerLoad).joined(asyncio.Event()) as worker_id,
        ):
            return worker_id

    assert asyncio.run(joined()) == "by-name"
