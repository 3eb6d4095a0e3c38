"""The PC owner's say through real worker processes: outside its hours or paused, a worker takes no work,
hands what it runs to another worker, shows why, and serves again when resumed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import grpc
import pytest

from swarm.client import SwarmClient
from swarm.launch.local_swarm import ManagedProcess, swarm_argv, wait_until
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.worker.owner_hours import DAY_NAMES
from tests.conftest import RunningSwarm, serving_worker
from tests.e2e.test_drain import StreamInBackground

MakeSwarm = Callable[..., RunningSwarm]
MAX_TOKENS = 400  # seconds of work on the slow model


@pytest.fixture
def control_dir() -> Iterator[Path]:
    """A short path: a Unix socket's path must fit in 107 bytes, and pytest's tmp_path can be longer."""
    directory = Path(tempfile.mkdtemp(prefix="swc-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def start_worker(swarm: RunningSwarm, name: str, control_dir: Path, *extra: str) -> ManagedProcess:
    args = ["--threads", "1", "--slots", "4", "--context", "1024", "--worker-id", name, *swarm.worker_args, *extra]
    env = {"SWARM_CONTROL_DIR": str(control_dir)}
    return swarm.processes.start_worker(swarm.address, swarm.model, *args, name=name, env=env)


def owner(command: str, control_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARM_CONTROL_DIR": str(control_dir)}
    return subprocess.run(swarm_argv(command, *args), capture_output=True, text=True, timeout=30, env=env, check=False)


def shown_state(client: SwarmClient, worker_id: str) -> str:
    return next((w.shown_state for w in client.status().workers if w.info.worker_id == worker_id), "gone")


def address_of(client: SwarmClient, worker_id: str) -> str:
    return next(w.info.address for w in client.status().workers if w.info.worker_id == worker_id)


def test_a_worker_outside_its_hours_takes_no_work_and_says_so(make_swarm: MakeSwarm, control_dir: Path) -> None:
    not_today = DAY_NAMES[(datetime.now().weekday() + 2) % 7]  # two days off: still not today past midnight
    swarm = make_swarm(workers=0)
    start_worker(swarm, "off", control_dir, "--when", f"{not_today} 00:00-24:00")
    start_worker(swarm, "on", control_dir)
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        wait_until(lambda: shown_state(client, "off") == "outside its hours", 10, "off to show outside its hours")
        served = {client.generate(f"Hello {i}", max_tokens=4, temperature=0.0).finished.worker_id for i in range(4)}
        off_address = address_of(client, "off")
    assert served == {"on"}
    # Asked directly, it refuses like a draining worker.
    with grpc.insecure_channel(off_address) as channel, pytest.raises(grpc.RpcError) as refused:
        list(pb_grpc.WorkerStub(channel).Run(pb.RunRequest(request_id="direct", prompt="Hi", max_tokens=2)))
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "outside its hours" in str(refused.value.details())
    local = owner("local", control_dir, "--worker-id", "off")
    assert local.returncode == 0, local.stderr
    assert f"off: outside its hours (--when {not_today} 00:00-24:00)" in local.stdout


def test_paused_by_its_owner_a_worker_hands_its_stream_on_and_serves_again_when_resumed(
    make_swarm: MakeSwarm, slow_model: Path, redis_url: str, control_dir: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)
    for name in "ab":
        start_worker(swarm, name, control_dir)
    swarm.wait_for_workers(2)
    stream = StreamInBackground(swarm, max_tokens=MAX_TOKENS, request_id="long")
    assert stream.started.wait(30)
    busy = serving_worker(redis_url, "long")
    other = next(name for name in "ab" if name != busy)
    paused = owner("pause", control_dir, "--worker-id", busy)
    assert paused.returncode == 0, paused.stderr
    assert f"{busy}: paused by its owner; 1 running requests handed to other workers" in paused.stdout
    with swarm.client() as client:
        wait_until(lambda: shown_state(client, busy) == "paused by its owner", 10, f"{busy} to show as paused")
        assert client.generate("Hello while paused", max_tokens=4).finished.worker_id == other
        stream.join(90)
        assert stream.finished is not None and stream.finished.worker_id == other
        assert stream.finished.completion_tokens == MAX_TOKENS  # nothing lost, nothing generated twice
        assert "paused by its owner" in owner("local", control_dir).stdout
        resumed = owner("resume", control_dir, "--worker-id", busy)
        assert resumed.returncode == 0 and f"{busy}: serving" in resumed.stdout, resumed.stdout + resumed.stderr
        wait_until(lambda: shown_state(client, busy) == "up", 10, f"{busy} to show as up again")
        assert owner("pause", control_dir, "--worker-id", other).returncode == 0
        wait_until(lambda: shown_state(client, other) == "paused by its owner", 10, f"{other} to show as paused")
        assert client.generate("Hello after resuming", max_tokens=4).finished.worker_id == busy
