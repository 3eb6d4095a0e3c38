"""The PC owner's say through real worker processes: outside its hours, paused, or while its owner's load is high,
a worker takes no work, hands what it runs to another worker, shows why, and serves again when allowed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import grpc
import pytest

from swarm.client import SwarmCallError, SwarmClient
from swarm.launch.local_swarm import ManagedProcess, swarm_argv, wait_until
from swarm.shared.types import Finished, TextPiece
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.worker.owner_hours import DAY_NAMES
from swarm.worker.owner_load import busy_seconds
from swarm.worker.owner_watch import SAMPLE_INTERVAL_S
from tests.conftest import RunningSwarm, serving_worker
from tests.e2e.test_drain import StreamInBackground
from tests.greedy_check import GreedyReference

MakeSwarm = Callable[..., RunningSwarm]
MAX_TOKENS = 400  # seconds of work on the slow model
LONG_TOKENS = 900  # on a quiet core the desk makes about 60 tokens/s per stream: still running when the hog starts
OWNER_CPU = 0.60  # a hog beside the desk (its session at nice 10) takes ~90% of the core; other processes come and go
OWNER_QUIET_S = 2.0


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


class TokensInBackground:
    """One greedy stream read on a thread, keeping its token ids."""

    def __init__(self, swarm: RunningSwarm, prompt: str, max_tokens: int, request_id: str) -> None:
        self.prompt = prompt
        self.tokens: list[int] = []
        self.finished: Finished | None = None
        self.error: SwarmCallError | None = None
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(swarm, max_tokens, request_id))
        self._thread.start()

    def _read(self, swarm: RunningSwarm, max_tokens: int, request_id: str) -> None:
        with swarm.client() as client:
            try:
                for event in client.stream(self.prompt, max_tokens=max_tokens, temperature=0.0, request_id=request_id):
                    if isinstance(event, TextPiece):
                        self.tokens.extend(event.token_ids)
                        self.started.set()
                    elif isinstance(event, Finished):
                        self.finished = event
            except SwarmCallError as exc:  # kept for the test to see (a skipped test's swarm stops under it)
                self.error = exc

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the stream did not end"


def session_nice(pid: int) -> str:
    """The nice of pid's autogroup ("none" on a kernel without autogroups)."""
    autogroup = Path(f"/proc/{pid}/autogroup")
    return autogroup.read_text().split()[-1] if autogroup.exists() else "none"


def holds_within(condition: Callable[[], bool], timeout_s: float) -> bool:
    try:
        wait_until(condition, timeout_s, "")
    except TimeoutError:
        return False
    return True


def pin(pid: int, core: int) -> None:
    """Every thread of pid on one core (threads it starts later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {core})


class CoreQuiet:
    """Called every sample: whether `core` was below OWNER_CPU busy (by everyone) since the last call."""

    def __init__(self, core: int) -> None:
        self._core = core
        self._look = self._now()

    def _now(self) -> tuple[float, float]:
        return time.monotonic(), busy_seconds(Path("/proc/stat").read_text(), {self._core})

    def __call__(self) -> bool:
        before, self._look = self._look, self._now()
        return (self._look[1] - before[1]) / max(self._look[0] - before[0], 1e-6) < OWNER_CPU


def shows_up_unless_never_quiet(
    client: SwarmClient, worker_id: str, quiet: Callable[[], bool], timeout_s: float
) -> bool:
    """True once worker_id shows as up; False if it did not while the PC was never `quiet` for long.

    A shared machine's other processes count as the owner's: a worker there may rightly never come back.
    """
    deadline, last = time.monotonic() + timeout_s, time.monotonic()
    quiet_for = longest_quiet = 0.0
    while time.monotonic() < deadline:
        if shown_state(client, worker_id) == "up":
            return True
        time.sleep(SAMPLE_INTERVAL_S)  # sampling as the worker does
        now = time.monotonic()
        quiet_for = quiet_for + now - last if quiet() else 0.0
        last, longest_quiet = now, max(longest_quiet, quiet_for)
    assert longest_quiet < OWNER_QUIET_S + 3, f"{worker_id}'s PC was quiet {longest_quiet:.1f} s, yet it stayed away"
    return False


def test_a_worker_whose_owner_gets_busy_hands_its_streams_on_and_serves_again_once_the_pc_is_quiet(
    make_swarm: MakeSwarm, slow_model: Path, redis_url: str, control_dir: Path
) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs two cores: one for the owner's desk, one for the other worker")
    swarm = make_swarm(workers=0, model=slow_model)
    desk_flags = ("--when", "idle", "--owner-cpu", f"{OWNER_CPU:.0%}", "--owner-quiet", str(OWNER_QUIET_S))
    desk = start_worker(swarm, "desk", control_dir, *desk_flags)
    spare = start_worker(swarm, "spare", control_dir)
    swarm.wait_for_workers(2)
    pin(desk.pid, cores[0])
    pin(spare.pid, cores[1])
    with swarm.client() as client:
        if not holds_within(lambda: shown_state(client, "desk") == "up", 30):
            pytest.skip("other processes on this shared machine kept the desk's core busy before the hog started")
    assert owner("pause", control_dir, "--worker-id", "spare").returncode == 0  # so the streams begin on the desk
    streams = [TokensInBackground(swarm, f"Once upon a time {i}", LONG_TOKENS, f"desk-{i}") for i in range(2)]
    served_by_desk = all(stream.started.wait(30) for stream in streams)
    assert owner("resume", control_dir, "--worker-id", "spare").returncode == 0
    with swarm.client() as client:
        wait_until(lambda: shown_state(client, "spare") == "up", 10, "spare to serve")
    desk_serving = "desk: serving" in owner("local", control_dir, "--worker-id", "desk").stdout  # its own word: no lag
    if not (served_by_desk and desk_serving):
        for worker in (desk, spare):  # its streams run on: a drain would outlast the teardown's grace period
            worker.kill()
        pytest.skip("other processes on this shared machine kept the desk's core busy before the hog started")
    assert {serving_worker(redis_url, f"desk-{i}") for i in range(2)} == {"desk"}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, {cores[0]})
        with swarm.client() as client:
            wait_until(lambda: shown_state(client, "desk") == "away: its owner is busy", 10, "desk to back off")
            assert session_nice(desk.pid) in ("0", "none")  # away, nothing to compute: its heartbeats keep up
            for stream in streams:
                stream.join(90)
                assert stream.error is None and stream.finished is not None and stream.finished.worker_id == "spare"
                assert stream.finished.completion_tokens == len(stream.tokens) == LONG_TOKENS  # none lost or twice
    finally:
        hog.kill()
        hog.wait()
    reference = GreedyReference(slow_model, n_ctx=1024)
    try:
        for stream in streams:  # batched on both workers: greedy up to near ties, never mixed up
            reference.check(stream.prompt, stream.tokens)
    finally:
        reference.close()
    with swarm.client() as client:
        if not shows_up_unless_never_quiet(client, "desk", CoreQuiet(cores[0]), 20):
            pytest.skip("other processes on this shared machine kept the desk's core busy after the hog ended")
    local = owner("local", control_dir, "--worker-id", "desk")
    assert "desk: serving (--when idle)" in local.stdout, local.stdout + local.stderr


def memory_kib() -> tuple[int, int]:
    """MemTotal and MemAvailable, KiB."""
    values = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    return int(values["MemTotal"].split()[0]), int(values["MemAvailable"].split()[0])


def maps_model(pid: int, model: Path) -> bool:
    """Whether the process maps the model file (llama.cpp mmaps the weights)."""
    return str(model) in Path(f"/proc/{pid}/maps").read_text()


def test_a_worker_whose_pc_runs_short_of_memory_frees_its_model_and_serves_again_once_memory_is_back(
    make_swarm: MakeSwarm, tiny_model: Path, control_dir: Path
) -> None:
    total, available = memory_kib()
    allocate_kib = total // 10  # the threshold sits half of that below what is available now: never near the OOM killer
    if available < 3 * allocate_kib:
        pytest.skip("less than 30% of this machine's memory is available: too little to take 10% of it safely")
    threshold = (available - allocate_kib / 2) / total
    swarm = make_swarm(workers=0)
    desk_flags = (
        "--when",
        "idle",
        "--owner-cpu",
        "100%",
        "--owner-memory",
        f"{threshold:.2%}",
        "--owner-quiet",
        str(OWNER_QUIET_S),
    )
    desk = start_worker(swarm, "desk", control_dir, *desk_flags)
    swarm.wait_for_workers(1)
    with swarm.client() as client:
        if not holds_within(lambda: shown_state(client, "desk") == "up", 30):
            pytest.skip("other processes on this shared machine took memory before the test could")
        before = client.generate("Once upon a time", max_tokens=12, temperature=0.0).text
        assert maps_model(desk.pid, tiny_model)
        assert session_nice(desk.pid) in ("10", "none")  # serving, its session weighs little against the owner's
        allocator = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys\nheld = b'x' * {allocate_kib * 1024}\nprint(flush=True)\nsys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert allocator.stdout is not None and allocator.stdout.readline() == b"\n"  # it holds the memory now
            unloaded = "away: memory is short; its model unloaded"
            wait_until(lambda: shown_state(client, "desk") == unloaded, 20, "desk to free its model")
            assert not maps_model(desk.pid, tiny_model)
            assert session_nice(desk.pid) in ("0", "none")  # away, nothing to compute: its heartbeats keep up
            local = owner("local", control_dir, "--worker-id", "desk")
            assert f"desk: {unloaded}" in local.stdout, local.stdout + local.stderr
        finally:
            allocator.kill()
            allocator.wait()
        if not shows_up_unless_never_quiet(client, "desk", lambda: memory_kib()[1] / total > threshold, 30):
            pytest.skip("other processes on this shared machine kept its memory short after the allocation ended")
        assert maps_model(desk.pid, tiny_model)
        again = client.generate("Once upon a time", max_tokens=12, temperature=0.0)
    assert (again.finished.worker_id, again.text) == ("desk", before)  # decoded alone both times: the same text
