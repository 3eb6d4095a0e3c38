"""Zero-config join: a real coordinator advertises itself over mDNS on loopback and `swarm join` finds it.

Multicast works on this sandbox's loopback as it is (no `ip link set lo multicast on` needed): zeroconf
sends to 224.0.0.251 with IP_MULTICAST_IF set to 127.0.0.1 and IP_MULTICAST_LOOP on, and the kernel
delivers the datagram back to the sockets that joined the group on that interface.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from zeroconf import ServiceInfo

from swarm.launch.local_swarm import ManagedProcess, swarm_argv, wait_until
from swarm.shared.discovery import (
    NOT_FOUND,
    SERVICE_TYPE,
    CoordinatorAdvertiser,
    DiscoveryError,
    FoundCoordinator,
    check_swarm_name,
    choose_coordinator,
    find_coordinators,
    parse_info,
)
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(60)

LOOPBACK = ["127.0.0.1"]


def advertised_ports(timeout_s: float) -> set[int]:
    return {c.grpc_port for c in find_coordinators(timeout_s, interfaces=LOOPBACK)}


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def test_a_coordinator_is_found_and_a_worker_joins_it_without_an_address(
    make_swarm: object, tiny_model: Path, tmp_path: Path
) -> None:
    # A name of this test's own, so coordinators of tests running beside it on this machine do not count.
    name = f"test-{secrets.token_hex(4)}"
    swarm: RunningSwarm = make_swarm(workers=0, coordinator_args=("--swarm-name", name))  # type: ignore[operator]
    found: list[FoundCoordinator] = []

    def advertised() -> bool:
        # Registration probes for a unique name for about a second after the coordinator starts serving.
        found[:] = [c for c in find_coordinators(2.0, interfaces=LOOPBACK) if c.address == swarm.address]
        return bool(found)

    wait_until(advertised, 20, f"{swarm.address} to be advertised")
    assert found[0].http_port == port_of(swarm.http)
    assert found[0].version and found[0].swarm_name == name

    worker = ManagedProcess(
        "worker-discovered",
        swarm_argv(
            *("join", "--swarm-name", name, "--model", str(tiny_model)),
            *("--listen", "127.0.0.1:0", "--threads", "1", "--slots", "2"),
        ),
        tmp_path / "worker-discovered.log",
    ).start()
    swarm.processes.processes.append(worker)  # stopped with the swarm
    swarm.wait_for_workers(1, timeout_s=40)


def test_a_coordinator_stops_advertising_when_it_stops(make_swarm: object) -> None:
    swarm: RunningSwarm = make_swarm(workers=0)  # type: ignore[operator]
    port = port_of(swarm.address)
    wait_until(lambda: port in advertised_ports(2.0), 20, "the coordinator's advertisement")
    swarm.coordinator.stop()
    assert port not in advertised_ports(2.0)


def test_no_advertise_keeps_a_coordinator_off_the_lan(make_swarm: object) -> None:
    swarm: RunningSwarm = make_swarm(workers=0, coordinator_args=("--no-advertise",))  # type: ignore[operator]
    assert port_of(swarm.address) not in advertised_ports(2.0)


def coordinator(host: str, port: int, swarm_name: str = "") -> FoundCoordinator:
    return FoundCoordinator(f"c{port}.{SERVICE_TYPE}", host, port, 0, "0.1.0", swarm_name)


def test_join_needs_exactly_one_coordinator() -> None:
    with pytest.raises(DiscoveryError, match=NOT_FOUND):
        choose_coordinator([])
    with pytest.raises(DiscoveryError, match="several coordinators"):
        choose_coordinator([coordinator("10.0.0.1", 50051), coordinator("10.0.0.2", 50051)])
    assert choose_coordinator([coordinator("10.0.0.1", 50051)]) == "10.0.0.1:50051"


def test_a_swarm_name_picks_one_of_several_coordinators() -> None:
    lan = [coordinator("10.0.0.1", 50051, "lab"), coordinator("10.0.0.2", 50051, "office")]
    assert choose_coordinator(lan, "office") == "10.0.0.2:50051"
    with pytest.raises(DiscoveryError, match="no coordinator of swarm 'home'"):
        choose_coordinator(lan, "home")
    with pytest.raises(ValueError, match="--swarm-name must be"):
        check_swarm_name("has space")


@pytest.mark.parametrize(
    "properties",
    [{}, {"grpc_port": "x"}, {"grpc_port": "70000"}, {"grpc_port": "50051", "http_port": "-1"}],
)
def test_malformed_advertisements_are_ignored(properties: dict[str, str]) -> None:
    info = ServiceInfo(
        SERVICE_TYPE, f"bad.{SERVICE_TYPE}", addresses=[socket.inet_aton("10.0.0.1")], port=1, properties=properties
    )
    assert parse_info(info) is None


def test_join_without_an_address_says_so_when_no_coordinator_answers(tiny_model: Path) -> None:
    # A network namespace of its own, with only its own loopback up, is a LAN where no coordinator runs.
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None or subprocess.run([unshare, "-n", "true"], check=False).returncode != 0:
        pytest.skip("needs unshare -n (root) and ip to make an empty network namespace")
    join = " ".join(swarm_argv("join", "--model", str(tiny_model)))
    result = subprocess.run(
        [unshare, "-n", "sh", "-c", f"{ip} link set lo up && exec {join}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "SWARM_COORDINATOR"},
    )
    assert result.returncode == 2
    assert f"swarm join: error: {NOT_FOUND}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_coordinator_that_cannot_advertise_still_starts(caplog: pytest.LogCaptureFixture) -> None:
    async def start_and_close() -> None:
        advertiser = CoordinatorAdvertiser("[::1]:50051", 50051, "")  # mDNS here is IPv4 only
        advertiser.start()
        await advertiser.close()

    asyncio.run(start_and_close())
    assert "not advertising on the LAN" in caplog.text
