"""The capacity benchmark's processes (redis, coordinators, load-test workers) and how one step is run on them."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from swarm.bench.capacity_clients import ClientJob, ClientResult, client_process_main
from swarm.bench.capacity_metrics import CpuSampler, StepResult, percentile, steady_rate
from swarm.bench.capacity_profile import PySpy, find_py_spy, summarize_collapsed, summarize_cprofile
from swarm.bench.load_test_worker import MODEL_NAME
from swarm.client import SwarmCallError, SwarmClient
from swarm.launch.local_swarm import LocalSwarm, ManagedProcess, free_port, wait_until
from swarm.shared.auth import bearer_metadata
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

START_DELAY_S = 2.0  # client processes import, connect, then all start together this long after launch
# With --limits the coordinators require a key: this static one (no per-key limit, no Redis lookup) is the
# limits-off arm, and a key created with limits far above what the step offers is the limits-on arm.
BENCH_ADMIN_KEY = "capacity-bench-admin"
LIMITS_PATH = "coordinator, limits on"


@dataclass
class Bench:
    args: argparse.Namespace
    work_dir: Path
    swarm: LocalSwarm = field(init=False)
    coordinator: ManagedProcess | None = None
    address: str = ""
    peers: list[ManagedProcess] = field(default_factory=list)  # coordinators 2..N, on the same Redis
    peer_addresses: list[str] = field(default_factory=list)
    workers: list[ManagedProcess] = field(default_factory=list)
    worker_addresses: tuple[str, ...] = ()
    cprofile_path: Path | None = None
    profiles: list[tuple[str, str]] = field(default_factory=list)  # (title, summary)
    clients: list[multiprocessing.process.BaseProcess] = field(default_factory=list)
    limited_key: str = ""  # with --limits: the created key the limits-on arm sends

    def __post_init__(self) -> None:
        self.swarm = LocalSwarm(log_dir=self.work_dir)

    @property
    def admin_key(self) -> str:
        return BENCH_ADMIN_KEY if self.args.limits else ""

    def start(self) -> None:
        self.swarm.start_redis(self.work_dir / "redis")
        listen = f"127.0.0.1:{free_port()}"
        http = f"127.0.0.1:{free_port()}"
        keys = ("--api-key", BENCH_ADMIN_KEY) if self.args.limits else ()
        if self.args.profile and find_py_spy() is None:
            self.cprofile_path = self.work_dir / "coordinator.prof"
            log.info("py-spy not found: running the coordinator under cProfile (%s)", self.cprofile_path)
            argv = [sys.executable, "-m", "cProfile", "-o", str(self.cprofile_path), "-m", "swarm"]
            argv += ["--log-level", "info", "coordinator", "--listen", listen, "--http", http]
            argv += ["--redis", self.swarm.redis_url, "--default-model", MODEL_NAME, *keys]
            self.coordinator = ManagedProcess("coordinator", argv, self.work_dir / "coordinator.log").start()
            self.swarm.processes.append(self.coordinator)
        else:
            self.coordinator = self.swarm.start_coordinator(listen, http, "--default-model", MODEL_NAME, *keys)
        self.address = listen
        for i in range(1, max(self.args.coordinator_counts)):
            peer_listen = f"127.0.0.1:{free_port()}"
            peer = self.swarm.start_coordinator(
                peer_listen, "", "--default-model", MODEL_NAME, *keys, name=f"coordinator-{i + 1}"
            )
            self.peers.append(peer)
            self.peer_addresses.append(peer_listen)
        if self.args.pin_coordinators:
            self._pin()
        for i in range(self.args.load_workers):
            argv = [sys.executable, "-m", "swarm.bench.load_test_worker", "--coordinator", listen]
            argv += ["--rate", str(self.args.rate), "--worker-id", f"load-test-{i + 1}", "--log-level", "info"]
            argv += ["--max-seconds", "1800"]
            worker = ManagedProcess(f"load-test-worker-{i + 1}", argv, self.work_dir / f"load-test-worker-{i + 1}.log")
            self.swarm.processes.append(worker.start())
            self.workers.append(worker)
        with SwarmClient(listen, timeout_s=3.0, api_key=self.admin_key) as client:

            def all_up() -> bool:
                self._check_alive()
                try:
                    status = client.status()
                except SwarmCallError:
                    return False
                up = [w for w in status.workers if w.up and w.info.model == MODEL_NAME]
                self.worker_addresses = tuple(sorted(w.info.address for w in up))
                return len(up) >= int(self.args.load_workers)

            wait_until(all_up, 60, f"{self.args.load_workers} load-test workers to join the coordinator", 0.2)
        log.info("coordinator %s with load-test workers %s", listen, ", ".join(self.worker_addresses))
        if self.args.limits:
            self.limited_key = create_limited_key(listen, max(self.args.stream_counts))

    def _pin(self) -> None:
        """Coordinator k on core k; with cores to spare, everything else on the rest (it inherits them)."""
        cores = sorted(os.sched_getaffinity(0))
        coordinators = [p for p in (self.coordinator, *self.peers) if p is not None]
        for k, process in enumerate(coordinators):
            os.sched_setaffinity(process.pid, {cores[k % len(cores)]})
        rest = set(cores[len(coordinators) :])
        if rest:
            for process in self.swarm.processes:  # Redis, started first
                if process.name == "redis":
                    os.sched_setaffinity(process.pid, rest)
            os.sched_setaffinity(0, rest)  # this process, and the workers and clients it starts from now
        log.info("coordinators pinned to cores %s; the rest on %s", cores[: len(coordinators)], sorted(rest) or "all")

    def _check_alive(self) -> None:
        failed = self.swarm.failed()
        if failed is not None:
            raise RuntimeError(f"{failed.name} exited early; see {self.work_dir / (failed.name + '.log')}")

    def settle(self) -> None:
        """Waits (bounded) until the coordinator has nothing queued and the workers nothing running."""
        with SwarmClient(self.address, timeout_s=3.0, api_key=self.admin_key) as client:

            def idle() -> bool:
                self._check_alive()
                try:
                    status = client.status()
                except SwarmCallError:
                    return False
                busy = sum(w.load.slots_busy for w in status.workers)
                return status.queue_depth == 0 and busy == 0

            try:
                wait_until(idle, 20, "the coordinator and workers to be idle", 0.25)
            except TimeoutError as exc:
                log.warning("%s; measuring anyway", exc)
        time.sleep(1.2)  # one more heartbeat, so the previous step's load is gone from the registry

    def run_step(self, streams: int, coordinators: int, step_index: int, limited: bool = False) -> StepResult:
        """One step: through the first `coordinators` coordinators, or (0) straight to the workers; `limited`: with
        the key held to limits."""
        assert self.coordinator is not None
        self.settle()
        direct = coordinators == 0
        path = "direct" if direct else "coordinator" if coordinators == 1 else f"{coordinators} coordinators"
        if limited:
            path = LIMITS_PATH if coordinators == 1 else f"{path}, limits on"
        processes = min(self.args.client_processes, streams)
        start_at_ns = time.time_ns() + int(START_DELAY_S * 1e9)
        targets = self.worker_addresses if direct else (self.address, *self.peer_addresses)[:coordinators]
        context = multiprocessing.get_context("spawn")
        pipes: list[multiprocessing.connection.Connection] = []
        share = [streams // processes + (1 if i < streams % processes else 0) for i in range(processes)]
        for i, count in enumerate(share):
            job = ClientJob(
                targets=targets,
                direct=direct,
                streams=count,
                tokens=self.args.tokens_per_stream,
                start_at_ns=start_at_ns,
                time_limit_s=self.args.step_time_limit,
                streams_per_channel=self.args.streams_per_channel,
                ramp_s=self.args.ramp,
                cut_batch=self.args.cut_batch,
                tag=f"{step_index}-{path.replace(' ', '-').replace(',', '')}-{i}",  # request ids take no spaces
                api_key="" if direct else self.limited_key if limited else self.admin_key,
            )
            receiver, sender = context.Pipe(duplex=False)
            client = context.Process(target=client_process_main, args=(job, sender), daemon=True)
            client.start()
            sender.close()
            self.clients.append(client)
            pipes.append(receiver)
        groups = {
            "coordinator": [self.coordinator.pid, *(p.pid for p in self.peers)],
            "workers": [w.pid for w in self.workers],
            "redis": [p.pid for p in self.swarm.processes if p.name == "redis"],
        }
        sampler = CpuSampler(groups)
        wait_s = (start_at_ns - time.time_ns()) / 1e9
        if wait_s > 0:
            time.sleep(wait_s)
        spy: PySpy | None = None
        py_spy = find_py_spy()
        if self.args.profile and py_spy is not None and not direct:
            spy = PySpy(py_spy, self.coordinator.pid, self.work_dir / f"pyspy-{streams}.txt", self.args.profile_native)
        sampler.start()
        results: list[ClientResult] = []
        deadline = time.monotonic() + self.args.step_time_limit + 60
        try:
            for receiver in pipes:
                while not receiver.poll(0.5):
                    self._check_alive()
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"client processes did not report within the step's limit ({path}, {streams})"
                        )
                results.append(receiver.recv())
        finally:
            cpu, kernel_cpu, machine_busy, wall_s = sampler.stop()
            if spy is not None:
                spy.stop()
            reported = len(results) == len(pipes)  # else interrupted: a client may be blocked sending its result
            for started in self.clients:
                started.join(10 if reported else 0)
                if started.is_alive():
                    started.kill()
                    started.join(5)
            self.clients.clear()
        if spy is not None and spy.out.exists():
            self.profiles.append((f"coordinator under {streams} streams (py-spy)", summarize_collapsed(spy.out)))
        broken = [r.error for r in results if r.error]
        if broken:
            raise RuntimeError(f"a client process failed: {broken[0]}")
        rate, window_s = steady_rate(results, start_at_ns)
        latency: array[int] = array("q")
        ttft: array[int] = array("q")
        errors: Counter[str] = Counter()
        for r in results:
            latency.extend(r.latency_ns)
            ttft.extend(r.ttft_ns)
            errors.update(r.errors)
        cpu["clients"] = 100.0 * sum(r.cpu_s for r in results) / wall_s
        ends = [e for r in results for e in r.end_ns]
        return StepResult(
            path=path,
            streams=streams,
            offered_tps=streams * self.args.rate,
            relayed_tps=rate,
            window_s=window_s,
            completed=sum(r.completed for r in results),
            cut=sum(r.cut for r in results),
            failed=sum(r.failed for r in results),
            errors=dict(errors),
            latency_p50_ms=percentile(latency, 0.50) / 1e6,
            latency_p99_ms=percentile(latency, 0.99) / 1e6,
            ttft_p50_ms=percentile(ttft, 0.50) / 1e6,
            ttft_p99_ms=percentile(ttft, 0.99) / 1e6,
            cpu_percent=cpu,
            coordinator_kernel_percent=kernel_cpu["coordinator"],
            coordinator_us_per_token=cpu["coordinator"] / 100 * wall_s / len(latency) * 1e6 if latency else math.nan,
            machine_busy_percent=machine_busy,
            duration_s=(max(ends) - start_at_ns) / 1e9 if ends else 0.0,
        )

    def stop(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.kill()
                client.join(5)
        self.clients.clear()
        self.swarm.stop()  # load-test workers first (they leave), then the coordinator, then Redis
        if self.cprofile_path is not None:
            if self.cprofile_path.exists():
                self.profiles.append(("coordinator, whole run (cProfile)", summarize_cprofile(self.cprofile_path)))
            else:
                log.warning("the coordinator wrote no cProfile output to %s", self.cprofile_path)


def create_limited_key(address: str, streams: int) -> str:
    """A key held to every limit, each far above what a step offers, so the limits-on arm is never refused."""
    request = pb.CreateKeyRequest(
        name="capacity-bench-limited",
        tokens_per_minute=10**9,
        requests_per_minute=10**6,
        max_streams=streams * 4,
    )
    with grpc.insecure_channel(address) as channel:
        answer = pb_grpc.AdminStub(channel).CreateKey(request, metadata=bearer_metadata(BENCH_ADMIN_KEY), timeout=10)
    return str(answer.secret)
