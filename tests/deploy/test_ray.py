"""`swarm ray up|status|down` on a real local Ray cluster: actors run real workers that join a real coordinator.

The cluster is one `ray start --head --block` on loopback with 2 CPUs; each worker actor reserves 1.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from swarm.client import SwarmCallError
from swarm.launch.local_swarm import ManagedProcess, free_port, wait_until
from tests.conftest import RunningSwarm

pytest.importorskip("ray", reason="Ray is a dev dependency: pip install -e '.[dev]'")

pytestmark = pytest.mark.timeout(150)

# Token authentication as Ray enables it by default, with a token of this test's own instead of ~/.ray/auth_token.
# `swarm ray` is given the token alone: it must turn RAY_AUTH_MODE=token on itself to be let in.
SWARM_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
HEAD_ENV = {**SWARM_RAY_ENV, "RAY_AUTH_MODE": "token"}


def swarm_ray(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "swarm", "--log-level", "warning", "ray", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**{k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}, **SWARM_RAY_ENV},
        check=False,
    )
    assert result.returncode == 0, f"swarm ray {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    head = ManagedProcess(
        "ray-head",
        [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        tmp_path / "ray-head.log",
        env=HEAD_ENV,
    ).start()
    wait_until(lambda: port_open(port), 60, "the Ray head's GCS port")
    yield f"127.0.0.1:{port}"
    head.stop(30)  # --block: SIGTERM stops every Ray process the head started, the detached actors included


def ray_workers(address: str) -> dict[str, dict[str, object]]:
    rows = json.loads(swarm_ray("status", "--address", address, "--json").stdout)
    return {str(row["name"]): row for row in rows}


def served(swarm: RunningSwarm) -> bool:
    with swarm.client() as client:
        try:
            return client.generate("Hello", max_tokens=4, temperature=0).finished is not None
        except SwarmCallError:
            return False


def worker_addresses(swarm: RunningSwarm) -> dict[str, str]:
    with swarm.client(retries=0) as client:
        return {w.info.worker_id: w.info.address for w in client.status().workers if w.up}


PLACEMENT_PROBE = """
import json, sys, ray
ray.init(address=sys.argv[1], namespace="swarm", log_to_driver=False)
groups = [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]
print(json.dumps({"groups": [[g["strategy"], list(g["bundles"].values())] for g in groups],
                  "free_cpus": ray.available_resources().get("CPU", 0)}))
"""


def assert_placed_in_one_spread_group(address: str) -> None:
    """Each worker reserved its thread's CPU from a SPREAD placement group: the 2-CPU cluster has none left."""
    probe = subprocess.run(
        [sys.executable, "-c", PLACEMENT_PROBE, address],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **HEAD_ENV},
        check=True,
    )
    placement = json.loads(probe.stdout.splitlines()[-1])
    assert placement == {"groups": [["SPREAD", [{"CPU": 1.0}] * 2]], "free_cpus": 0}


def test_ray_workers_join_survive_a_killed_worker_and_leave(
    make_swarm: object, ray_cluster: str, tiny_model: Path
) -> None:
    swarm: RunningSwarm = make_swarm(workers=0)  # type: ignore[operator]
    up = swarm_ray(
        "up",
        "--address",
        ray_cluster,
        "--workers",
        "2",
        "--threads",
        "1",
        "--slots",
        "2",
        "--context",
        "256",
        "--model",
        str(tiny_model),
        "--coordinator",
        swarm.address,
        "--listen-host",
        "127.0.0.1",
        "--advertise-host",
        "127.0.0.1",
    )
    assert "2 swarm workers running" in up.stdout
    swarm.wait_for_workers(2)
    assert set(worker_addresses(swarm)) == {"swarm-worker-0", "swarm-worker-1"}
    assert served(swarm)

    before = ray_workers(ray_cluster)
    assert [row["state"] for row in before.values()] == ["running", "running"]
    assert all(row["node_id"] for row in before.values())
    assert_placed_in_one_spread_group(ray_cluster)
    killed_pid = int(str(before["swarm-worker-0"]["worker_pid"]))
    os.kill(killed_pid, signal.SIGKILL)  # the worker process dies as on a crash; its actor exits, Ray restarts it
    assert served(swarm), "the swarm stopped serving when one worker died"

    def restarted() -> bool:
        row = ray_workers(ray_cluster).get("swarm-worker-0", {})
        return row.get("state") == "running" and row.get("worker_pid") != killed_pid

    wait_until(restarted, 60, "Ray to restart swarm-worker-0 with a new worker", interval_s=1)
    new_address = str(ray_workers(ray_cluster)["swarm-worker-0"]["address"])
    assert new_address != before["swarm-worker-0"]["address"]
    wait_until(
        lambda: worker_addresses(swarm).get("swarm-worker-0") == new_address, 30, "the restarted worker to rejoin"
    )
    assert served(swarm)

    down = swarm_ray("down", "--address", ray_cluster)
    assert "removed 2 swarm workers" in down.stdout
    assert worker_addresses(swarm) == {}  # they drained and left instead of timing out
    assert ray_workers(ray_cluster) == {}
    pids = [int(str(row["worker_pid"])) for row in before.values()]
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
