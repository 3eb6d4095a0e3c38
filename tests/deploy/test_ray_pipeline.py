"""A pipeline across Ray nodes: `swarm ray up --auto` on a 3-node Ray cluster (three `ray start` nodes on this
machine, one CPU each) gives the coordinator's plan one worker per node, so a 2-stage pipeline spans two nodes;
when a stage's node is killed mid-stream the coordinator re-plans onto the nodes left and the stream goes on
with the text of an unfailed run."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from swarm.client import SwarmCallError
from swarm.launch.local_swarm import ManagedProcess, free_port, wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm
from tests.deploy.test_ray import HEAD_ENV, port_open, ray_workers, swarm_ray
from tests.greedy_check import GreedyReference

pytest.importorskip("ray", reason="Ray is a dev dependency: pip install -e '.[dev]'")

pytestmark = pytest.mark.timeout(240)
MakeSwarm = Callable[..., RunningSwarm]
PROMPT = "The quick brown fox"
MAX_TOKENS = 120


def ray_node(tmp_path: Path, name: str, head_port: int = 0) -> ManagedProcess:
    """One Ray node with 1 CPU: the head when head_port is 0, else a node joining it. Each has ports of its own,
    as separate machines would."""
    ports = {
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": free_port(),
    }
    role = ["--head", f"--port={head_port}", "--include-dashboard=false"] if name == "node-0" else []
    join = [] if name == "node-0" else [f"--address=127.0.0.1:{head_port}"]
    argv = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--block",
        *role,
        *join,
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--object-store-memory=80000000",
        "--disable-usage-stats",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]
    # A loaded machine registers a node slowly: give it time rather than fail its start.
    env = {**HEAD_ENV, "RAY_raylet_start_wait_time_s": "180"}
    node = ManagedProcess(name, argv, tmp_path / f"{name}.log", env=env).start()
    log = tmp_path / f"{name}.log"
    wait_until(lambda: "block forever" in log.read_text(errors="replace"), 180, f"Ray {name} to start", interval_s=0.5)
    return node


@pytest.fixture
def three_nodes(tmp_path: Path) -> Iterator[tuple[str, list[ManagedProcess]]]:
    port = free_port()
    nodes: list[ManagedProcess] = []
    try:
        nodes.append(ray_node(tmp_path, "node-0", port))
        assert port_open(port)
        nodes += [ray_node(tmp_path, f"node-{i}", port) for i in (1, 2)]  # one after another: each registers
        yield f"127.0.0.1:{port}", nodes
    finally:
        # SIGKILL, trees and all: a graceful `ray stop` of three nodes took 30 s of the suite, and nothing
        # of a test cluster needs saving.
        for node in nodes:
            kill_node(node)


def stage_roles(swarm: RunningSwarm) -> dict[str, str]:
    with swarm.client(retries=0) as client:
        return {w.info.worker_id: w.info.role for w in client.status().workers if w.up}


def test_a_pipeline_spans_ray_nodes_and_survives_a_lost_node(
    make_swarm: MakeSwarm, three_nodes: tuple[str, list[ManagedProcess]], slow_model: Path, tmp_path: Path
) -> None:
    address, nodes = three_nodes
    plan = ("--plan-model", str(slow_model), "--plan-model-name", "slow", "--stages-dir", str(tmp_path / "library"))
    swarm = make_swarm(workers=0, model=slow_model, coordinator_args=(*plan, "--no-worker-wait", "90"))
    # 40 MiB holds half of the slow model with its KV cache: three such workers make a 2-stage pipeline and a spare.
    up = swarm_ray(
        *("up", "--address", address, "--workers", "3", "--threads", "1", "--slots", "8", "--context", "256"),
        *("--auto", "--memory", "40M", "--coordinator", swarm.address),
        *("--listen-host", "127.0.0.1", "--advertise-host", "127.0.0.1"),
        timeout=150,
    )
    assert "3 swarm workers running" in up.stdout
    wait_until(lambda: sum(r.startswith("stage") for r in stage_roles(swarm).values()) >= 2, 120, "a pipeline")
    placed = ray_workers(address)
    stages = {w: r for w, r in stage_roles(swarm).items() if r.startswith("stage")}
    assert len({placed[w]["node_id"] for w in stages}) == len(stages)  # each stage on a node of its own

    tokens: list[int] = []
    finished: list[Finished] = []
    errors: list[str] = []
    flowing = threading.Event()

    def read() -> None:
        try:
            with swarm.client() as client:
                for event in client.stream(PROMPT, model="slow", max_tokens=MAX_TOKENS, temperature=0.0):
                    if isinstance(event, TextPiece):
                        tokens.extend(event.token_ids)
                        flowing.set()
                    elif isinstance(event, Finished):
                        finished.append(event)
        except SwarmCallError as exc:
            errors.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    assert flowing.wait(60), "the stream never started"
    # A stage's whole node goes (not the head node: its loss would end the Ray cluster itself).
    pids = {w: int(str(placed[w]["worker_pid"])) for w in stages}
    victim, node = next((w, n) for w in stages for n in nodes[1:] if _runs(n, pids[w]))
    kill_node(node)
    reader.join(180)
    assert not reader.is_alive() and not errors, errors
    assert finished and len(tokens) == MAX_TOKENS == finished[0].completion_tokens  # none lost, none twice
    reference = GreedyReference(slow_model, n_ctx=512)
    try:
        reference.check(PROMPT, tokens)
    finally:
        reference.close()
    # The lost node's worker is gone (Ray may start its actor again elsewhere, under the same name), and the
    # swarm serves on with what is left.
    assert not psutil.pid_exists(pids[victim]) or psutil.Process(pids[victim]).status() == psutil.STATUS_ZOMBIE
    with swarm.client() as client:
        assert client.generate(PROMPT, model="slow", max_tokens=4, temperature=0.0).finished.completion_tokens == 4


def kill_node(node: ManagedProcess) -> None:
    """SIGKILLs a whole node at once, as a PC losing power: `ray start`, its raylet, the actors and workers below."""
    try:
        tree = psutil.Process(node.pid).children(recursive=True)
    except psutil.NoSuchProcess:  # killed before, or never came up
        tree = []
    node.kill()
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _runs(node: ManagedProcess, pid: int) -> bool:
    """Whether pid descends from node's `ray start` process."""
    try:
        return any(child.pid == pid for child in psutil.Process(node.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return False
