"""WorkerActor: the body of a Ray actor that runs one real `swarm join` child process and dies with it.

When the child exits on its own the actor process exits too, so Ray (max_restarts=-1) restarts the
actor, which starts a new child that joins the coordinator again under the same worker id.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading

from swarm.launch.local_swarm import free_port

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
DRAIN_TIMEOUT_S = 40.0  # the worker lets running requests finish for 30 s before it leaves


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it if the actor process dies (ray.kill, a lost node)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class WorkerActor:
    """Supervises one `swarm join`; Ray wraps this class with ray.remote, so its methods are the actor's calls."""

    def __init__(self, name: str, join_args: list[str], listen_host: str, advertise_host: str) -> None:
        self._name = name
        self._stopping = False
        self._port = free_port(listen_host)
        # The node's address in the Ray cluster is the one other machines reach it on.
        self._advertise_host = advertise_host or str(importlib.import_module("ray").util.get_node_ip_address())
        argv = [
            sys.executable,
            "-m",
            "swarm",
            "join",
            *join_args,
            "--worker-id",
            name,
            "--listen",
            f"{listen_host}:{self._port}",
            "--advertise",
            self.address(),
        ]
        started = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        # PDEATHSIG fires when the thread that forked the child ends, so the supervising thread, which
        # lives as long as the actor process, is the one that starts it.
        self._supervisor = threading.Thread(
            target=self._supervise, args=(argv, started), name=f"{name}-supervisor", daemon=True
        )
        self._supervisor.start()
        started.wait()
        if self._child is None:
            raise RuntimeError(f"{name}: could not start {' '.join(argv[:5])}")

    def _supervise(self, argv: list[str], started: threading.Event) -> None:
        try:
            self._child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        finally:
            started.set()
        code = self._child.wait()
        if self._stopping:
            return
        log.error("%s: swarm join exited with code %s; exiting the actor so that Ray restarts it", self._name, code)
        os._exit(1)  # an actor failure, not an intentional exit: Ray restarts the actor

    def ping(self) -> str:
        return "pong"

    def address(self) -> str:
        """HOST:PORT the coordinator dials to reach this actor's worker."""
        return f"{self._advertise_host}:{self._port}"

    def describe(self) -> dict[str, str | int]:
        """Plain values for `swarm ray status`."""
        return {
            "name": self._name,
            "address": self.address(),
            "hostname": socket.gethostname(),
            "node_id": str(importlib.import_module("ray").get_runtime_context().get_node_id()),
            "worker_pid": self._child.pid if self._child is not None else 0,
        }

    def stop(self) -> int | None:
        """SIGTERM: the worker drains and leaves the coordinator; returns its exit code (None: killed)."""
        self._stopping = True
        child = self._child
        if child is None or child.poll() is not None:
            return None if child is None else child.returncode
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(DRAIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait(10)
            return None
