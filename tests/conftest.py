"""Shared fixtures: a real redis-server, a tiny synthetic GGUF, and swarms of real processes on free ports."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from swarm.client import SwarmCallError, SwarmClient
from swarm.coordinator import redis_keys
from swarm.gguf_files.default_model import default_model_path
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import LocalSwarm, ManagedProcess, free_port, wait_until


def stop_cleanly(*swarms: LocalSwarm) -> None:
    """Stops every swarm, then fails the test if a process ignored SIGTERM and had to be SIGKILLed.

    A process that does not leave on SIGTERM within its grace period is a bug (an uncancelled
    background task, a hung shutdown) that would otherwise only show as a slow teardown.
    """
    stubborn = [p for swarm in swarms for p in swarm.stop()]
    if stubborn:
        pytest.fail(
            "\n\n".join(
                f"{p.name} (pid {p.pid}) ignored SIGTERM for its grace period and was SIGKILLed; "
                f"its log ends:\n{p.log_tail()}"
                for p in stubborn
            ),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    swarm = LocalSwarm(log_dir=tmp_path_factory.mktemp("redis-log"))
    url = swarm.start_redis(tmp_path_factory.mktemp("redis-data"))
    yield url
    stop_cleanly(swarm)


@pytest.fixture
def local_swarm(tmp_path: Path) -> Iterator[LocalSwarm]:
    """An empty LocalSwarm logging to the test's tmp dir, for tests that start their own Redis; stopped cleanly."""
    processes = LocalSwarm(log_dir=tmp_path)
    yield processes
    stop_cleanly(processes)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny.gguf", seed=0)


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic model big enough that a generation takes seconds on one thread: faults land mid-stream."""
    path = tmp_path_factory.mktemp("models") / "slow.gguf"
    return write_tiny_llama(path, seed=3, n_layer=6, n_embd=384, n_head=6, n_head_kv=2, n_ff=1536, context_length=1024)


@pytest.fixture(scope="session")
def gemma_model() -> Path:
    """The real default model (Gemma 3 270M Q4_K_M), assembled once into the user's cache."""
    return default_model_path(progress=False)


def serving_worker(redis_url: str, request_id: str) -> str:
    """The worker id the coordinator handed a running request to, as Redis has it."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return str(client.hget(redis_keys.request_key(request_id), "worker") or "")
    finally:
        client.close()


def coordinator_answers(address: str, **client_options: object) -> bool:
    """True once the coordinator at address answers a status call (no retries)."""
    with SwarmClient(address, **{**client_options, "retries": 0}) as client:  # type: ignore[arg-type]
        try:
            client.status()
        except SwarmCallError:
            return False
    return True


@dataclass
class RunningSwarm:
    """A coordinator and workers started as real processes; logs land in the test's tmp dir."""

    processes: LocalSwarm
    address: str
    http: str
    model: Path
    coordinator: ManagedProcess
    client_options: dict[str, object] = field(default_factory=dict)  # every client's api_key, tls
    worker_args: tuple[str, ...] = ()  # flags every worker gets: --token, TLS files

    def client(self, **kwargs: object) -> SwarmClient:
        return SwarmClient(self.address, **{**self.client_options, **kwargs})  # type: ignore[arg-type]

    def start_coordinator(self, *extra: str) -> ManagedProcess:
        self.coordinator = self.processes.start_coordinator(self.address, self.http, *extra)
        return self.coordinator

    def add_worker(self, *extra: str, name: str = "worker", model: Path | None = None) -> ManagedProcess:
        args = ["--threads", "1", "--slots", "4", "--context", "512", *self.worker_args, *extra]
        return self.processes.start_worker(self.address, model or self.model, *args, name=name)

    def up_workers(self) -> list[str]:
        with self.client(retries=0) as client:
            try:
                return [w.info.worker_id for w in client.status().workers if w.up]
            except SwarmCallError:
                return []

    def answers(self) -> bool:
        return coordinator_answers(self.address, **self.client_options)

    def wait_for_coordinator(self, timeout_s: float = 60) -> None:
        def answers() -> bool:
            if not self.coordinator.alive:
                log = self.coordinator.log_path.read_text() if self.coordinator.log_path else ""
                raise CoordinatorExited(f"the coordinator on {self.address} exited:\n{log[-3000:]}")
            return self.answers()

        wait_until(answers, timeout_s, f"coordinator on {self.address}")

    def wait_for_workers(self, count: int, timeout_s: float = 60) -> list[str]:
        def enough() -> bool:
            dead = self.processes.failed()
            if dead is not None:
                log = dead.log_path.read_text() if dead.log_path else ""
                raise RuntimeError(f"{dead.name} exited early:\n{log[-3000:]}")
            return len(self.up_workers()) >= count

        wait_until(enough, timeout_s, f"{count} workers up")
        return self.up_workers()


class CoordinatorExited(RuntimeError):
    """The coordinator a test started exited before it answered."""


@pytest.fixture
def make_swarm(redis_url: str, tiny_model: Path, tmp_path: Path) -> Iterator[object]:
    started: list[LocalSwarm] = []

    def make(
        workers: int = 1,
        coordinator_args: tuple[str, ...] = (),
        model: Path | None = None,
        client_options: dict[str, object] | None = None,
        worker_args: tuple[str, ...] = (),
    ) -> RunningSwarm:
        processes = LocalSwarm(log_dir=tmp_path, redis_url=redis_url)
        started.append(processes)
        for attempt in range(3):
            address, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
            coordinator = processes.start_coordinator(address, http, *coordinator_args)
            swarm = RunningSwarm(
                processes, address, http, model or tiny_model, coordinator, client_options or {}, worker_args
            )
            try:
                swarm.wait_for_coordinator()
                break
            except CoordinatorExited as exited:
                # free_port's port was taken by another process before the coordinator bound it: new ports.
                if "cannot listen" not in str(exited) or attempt == 2:
                    raise
                processes.processes.remove(coordinator)
        for i in range(workers):
            swarm.add_worker(name=f"worker-{i}")
        if workers:
            swarm.wait_for_workers(workers)
        return swarm

    yield make
    stop_cleanly(*started)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.pop("SWARM_COORDINATOR", None)  # tests always name their coordinator
    os.environ.pop("SWARM_TOKEN", None)  # and their token


@pytest.fixture
def control_dir() -> Iterator[Path]:
    """Where workers put their owner's control sockets: a short path, as a Unix socket's path must fit in 107
    bytes and pytest's tmp_path can be longer."""
    directory = Path(tempfile.mkdtemp(prefix="swc-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
