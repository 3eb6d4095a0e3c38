"""LocalSwarm: starts Redis, a coordinator and workers as child processes on this machine, and stops them.

Used by `swarm up`, the benchmarks and the test fixtures, so all of them run the very processes a user runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

REDIS_MISSING = (
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: sudo apt-get install -y redis-server; "
    "macOS: brew install redis) or point swarm at a running Redis with --redis redis://HOST:PORT/0"
)


# Stages on one machine take turns on the same cores. A waiting stage's spinning OpenMP threads
# burn the cores the computing stage needs: with libgomp's default spin 0.65x the whole model on
# 2 cores, 0.94x with this shorter one (docs/benchmarks.md); a whole model's worker spins longer
# (swarm.engine). Separate PCs keep the worker's default.
SHARED_CORES_ENV = {"GOMP_SPINCOUNT": "5000"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


# Stop order: workers drain and deregister while the coordinator still answers; a pipeline's head
# leaves before the stages it feeds; Redis goes last, after everything that writes to it.
WORKER_TIER, LATER_STAGE_TIER, COORDINATOR_TIER, REDIS_TIER = range(4)


@dataclass
class ManagedProcess:
    """A child process in a process group of its own: a terminal's Ctrl-C reaches only its parent,
    which stops the children in order, and killing the group leaves nothing behind."""

    name: str
    argv: list[str]
    log_path: Path | None = None
    tier: int = WORKER_TIER  # stopped after every process of a lower tier
    process: subprocess.Popen[bytes] | None = None
    stopped_on_purpose: bool = False  # killed or stopped by us: its exit is no failure
    ignored_sigterm: bool = False  # the last stop() had to SIGKILL it: it outlived its grace period
    env: dict[str, str] | None = None  # extra environment variables for the child
    unset_env: tuple[str, ...] = ()  # variables of this process the child must not inherit

    def start(self) -> ManagedProcess:
        # The child writes its log through its own copy of the descriptor: ours closes at once, so that
        # restarting a process many times (a chaos bench) leaves no open file behind.
        with self.log_path.open("ab") if self.log_path is not None else contextlib.nullcontext() as log_file:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log_file or subprocess.DEVNULL,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                env=self._child_env(),
                start_new_session=True,
            )
        return self

    def _child_env(self) -> dict[str, str] | None:
        if not self.env and not self.unset_env:
            return None
        inherited = {name: value for name, value in os.environ.items() if name not in self.unset_env}
        return {**inherited, **(self.env or {})}

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up, as when a PC loses power."""
        self.stopped_on_purpose = True
        if self.alive and self.process is not None:
            self._kill_group()
            self.process.wait(10)

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: the process leaves cleanly (a worker drains and deregisters)."""
        self.stopped_on_purpose = True
        if self.alive and self.process is not None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL to its process group if it has not exited in time; returns the exit code."""
        if self.process is None:
            return None
        self.ignored_sigterm = False
        self.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.ignored_sigterm = True
            self._kill_group()
            self.process.wait(10)
        return self.process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        """The end of its log, for a failure message."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def interrupt_on_stop_signals() -> None:
    """Turns SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt, so the `finally` that stops child processes runs.

    SIGINT too, since a process started in the background from a script inherits it ignored; SIGHUP
    since children in their own process groups do not hear their terminal close.
    """

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)


def ignore_stop_signals() -> None:
    """From now on SIGINT, SIGTERM and SIGHUP do nothing: an impatient second Ctrl-C must not cut short
    the stopping of child processes, which would leave them running. Stopping them is bounded anyway."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(REDIS_MISSING)
    return binary


def _listed(answer: object) -> int:
    """How many entries a Sentinel command's list answer holds."""
    return len(answer) if isinstance(answer, list) else 0


def swarm_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "swarm", *args]


@dataclass
class LocalSwarm:
    """A coordinator, its workers and (unless given a URL) its own redis-server."""

    log_dir: Path | None = None
    log_level: str = ""  # the children's --log-level; empty: info when they log to files, else warning
    processes: list[ManagedProcess] = field(default_factory=list)
    redis_url: str = ""
    stop_grace_s: float = 15.0  # how long stop() lets each process leave on SIGTERM before SIGKILL

    def _log_path(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir is not None else None

    def _launch(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, tier: int = WORKER_TIER
    ) -> ManagedProcess:
        process = ManagedProcess(name, argv, self._log_path(name), tier, env=env).start()
        self.processes.append(process)
        return process

    def start_redis(self, data_dir: Path, port: int = 0, password: str = "") -> str:
        """Starts redis-server on 127.0.0.1 (requiring password, if given) and returns its URL."""
        binary = _redis_server()
        data_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        self._launch(
            "redis",
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "yes",
                *(["--requirepass", password] if password else []),
            ],
            tier=REDIS_TIER,
        )
        credentials = f":{quote(password, safe='')}@" if password else ""
        self.redis_url = f"redis://{credentials}127.0.0.1:{port}/0"
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, 15, f"redis-server on port {port}")
        client.close()
        return self.redis_url

    def start_redis_replica(self, data_dir: Path, primary_port: int, port: int = 0, name: str = "redis-replica") -> int:
        """Starts a redis-server on 127.0.0.1 replicating the one on primary_port; returns its port once in sync."""
        binary = _redis_server()
        data_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--appendonly", "yes"]
        self._launch(name, [*argv, "--save", "", "--replicaof", "127.0.0.1", str(primary_port)], tier=REDIS_TIER)
        client = redis.Redis(port=port, socket_connect_timeout=1, decode_responses=True)

        def in_sync() -> bool:
            try:
                return client.info("replication").get("master_link_status") == "up"
            except redis.RedisError:
                return False

        wait_until(in_sync, 15, f"redis replica on port {port} in sync with port {primary_port}")
        client.close()
        return port

    def start_sentinels(
        self, data_dir: Path, primary_port: int, replicas: int, count: int = 3, service: str = "swarm"
    ) -> str:
        """Starts `count` Redis Sentinels watching the primary on primary_port (quick to fail over, for tests).

        Returns the redis+sentinel:// URL naming them, once each knows the primary's `replicas`
        replicas and the other Sentinels, and makes it this swarm's Redis URL.
        """
        binary = _redis_server()
        data_dir.mkdir(parents=True, exist_ok=True)
        ports = [free_port() for _ in range(count)]
        for index, port in enumerate(ports):
            config = data_dir / f"sentinel-{index}.conf"  # a Sentinel rewrites its own file
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {data_dir}\n"
                f"sentinel monitor {service} 127.0.0.1 {primary_port} {count // 2 + 1}\n"
                f"sentinel down-after-milliseconds {service} 1000\n"
                f"sentinel failover-timeout {service} 3000\n"
                f"sentinel parallel-syncs {service} 1\n"
            )
            self._launch(f"sentinel-{index}", [binary, str(config), "--sentinel"], tier=REDIS_TIER)
        clients = [redis.Redis(port=port, socket_connect_timeout=1, decode_responses=True) for port in ports]

        def ready() -> bool:
            try:
                return all(
                    _listed(c.sentinel_slaves(service)) >= replicas
                    and _listed(c.sentinel_sentinels(service)) >= count - 1
                    for c in clients
                )
            except redis.RedisError:
                return False

        wait_until(ready, 30, f"{count} Sentinels agreeing on {service}")
        for client in clients:
            client.close()
        self.redis_url = f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in ports)}/{service}/0"
        return self.redis_url

    def start_coordinator(self, listen: str, http: str = "", *extra: str, name: str = "coordinator") -> ManagedProcess:
        """http: HOST:PORT of its HTTP API; empty for none (never the default port, which another may hold)."""
        args = ["coordinator", "--listen", listen, "--redis", self.redis_url, "--http", http]
        return self._launch(name, swarm_argv(*self._verbosity(), *args, *extra), tier=COORDINATOR_TIER)

    def start_worker(
        self,
        coordinator: str,
        model: Path,
        *extra: str,
        name: str = "worker",
        env: dict[str, str] | None = None,
        tier: int = WORKER_TIER,
    ) -> ManagedProcess:
        args = ["join", coordinator, "--model", str(model), "--listen", "127.0.0.1:0", *extra]
        return self._launch(name, swarm_argv(*self._verbosity(), *args), env, tier)

    def start_auto_worker(
        self, coordinator: str, *extra: str, name: str = "worker", env: dict[str, str] | None = None
    ) -> ManagedProcess:
        """A worker that serves what the coordinator's plan assigns it (`swarm join --auto`)."""
        args = ["join", coordinator, "--auto", "--listen", "127.0.0.1:0", *extra]
        return self._launch(name, swarm_argv(*self._verbosity(), *args), env)

    def start_pipeline(self, coordinator: str, stage_files: list[Path], *extra: str) -> list[ManagedProcess]:
        """Starts one worker per stage file, last to first, each told where the next one listens.

        Only the first stage joins the coordinator; the others serve the stage before them.
        """
        ports = [free_port() for _ in stage_files]
        started = []
        for index in reversed(range(len(stage_files))):
            wiring = ["--listen", f"127.0.0.1:{ports[index]}"]
            if index + 1 < len(stage_files):
                wiring += ["--next-stage", f"127.0.0.1:{ports[index + 1]}"]
            started.append(
                self.start_worker(
                    coordinator,
                    stage_files[index],
                    *extra,
                    *wiring,
                    name=f"stage-{index}",
                    env=SHARED_CORES_ENV,
                    tier=WORKER_TIER if index == 0 else LATER_STAGE_TIER,
                )
            )
        return started

    def _verbosity(self) -> list[str]:
        return ["--log-level", self.log_level or ("info" if self.log_dir is not None else "warning")]

    def failed(self) -> ManagedProcess | None:
        """The first child that exited on its own, if any."""
        return next((p for p in self.processes if not p.alive and not p.stopped_on_purpose), None)

    def stop(self) -> list[ManagedProcess]:
        """Stops the processes tier by tier (see WORKER_TIER), each tier's together.

        Returns those that ignored SIGTERM for their grace period and were SIGKILLed: a clean
        stop is part of what a test checks, so the fixtures fail on them.
        """
        stopped = list(self.processes)
        for tier in sorted({p.tier for p in self.processes}):
            stopping = [p for p in self.processes if p.tier == tier]
            for process in stopping:
                with contextlib.suppress(OSError):
                    process.terminate()
            for process in stopping:
                with contextlib.suppress(OSError):
                    process.stop(self.stop_grace_s)
        self.processes.clear()
        return [p for p in stopped if p.ignored_sigterm]
