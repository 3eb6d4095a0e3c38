"""Coordinator relay capacity: tokens/s, streams and added per-token latency of ONE coordinator under load-test workers.

    python -m swarm.bench.coordinator_capacity --streams 1,10,100,1000 [--profile]

Starts its own redis-server, one real coordinator process and K load-test workers
(`swarm.bench.load_test_worker`, each its own process, emitting timestamped fake
tokens at a fixed rate per stream), all on 127.0.0.1. For each stream count S it
opens S concurrent Generate streams from separate client processes and measures the
relayed tokens/s while all S streams run, how many streams completed, the per-token
latency (client receive time minus the worker's send stamp in the piece text; p50 and
p99) and the time to first token. Unless `--no-direct`, each step is repeated with the
clients calling the workers' Run directly, so the latency the coordinator adds is the
difference of the two rows. It samples the CPU time of every process so the reader sees
who saturates, and with `--profile` samples the coordinator with py-spy (or, where
py-spy is missing, runs it under cProfile) and prints where its time goes.

Stream starts are spread over `--ramp` seconds and streams still running at the time
limit are cancelled `--cut-batch` at a time: a thousand simultaneous arrivals or
disconnects make the coordinator run more Redis commands at once than its connection
pool allows (`--ramp 0 --cut-batch 0` reproduces that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import psutil
import uvloop

from swarm.bench.load_test_worker import MODEL_NAME
from swarm.cli.local_swarm import LocalSwarm, ManagedProcess, free_port, wait_until
from swarm.client import SwarmCallError, SwarmClient
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

BUCKET_NS = 100_000_000  # receive-time histogram resolution: 0.1 s
START_DELAY_S = 2.0  # client processes import, connect, then all start together this long after launch
TOP_FUNCTIONS = 25
CUT_INTERVAL_S = 0.05


# ---------------------------------------------------------------- one client process


@dataclass(frozen=True)
class ClientJob:
    """What one client process runs: `streams` concurrent calls, all started at `start_at_ns` (wall clock)."""

    targets: tuple[str, ...]  # the coordinator, or (direct) the workers, used round-robin
    direct: bool
    streams: int
    tokens: int
    start_at_ns: int
    time_limit_s: float
    streams_per_channel: int
    ramp_s: float  # stream starts spread evenly over this long
    cut_batch: int  # streams cancelled per CUT_INTERVAL_S at the time limit; 0: all at once
    tag: str


@dataclass
class ClientResult:
    first_ns: list[int] = field(default_factory=list)  # per stream: first piece received, 0 if none
    end_ns: list[int] = field(default_factory=list)  # per stream: last piece received, or when cut / failed
    tokens: int = 0
    completed: int = 0
    cut: int = 0  # still running at the step's time limit: cancelled
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency_ns: array[int] = field(default_factory=lambda: array("q"))
    ttft_ns: array[int] = field(default_factory=lambda: array("q"))
    histogram: list[int] = field(default_factory=list)  # pieces received per BUCKET_NS since start_at_ns
    cpu_s: float = 0.0
    error: str = ""


@dataclass
class _StreamState:
    first: int = 0
    last: int = 0
    cut_at: int = 0
    status: str = "cut"


async def _one_stream(call: Any, started_ns: int, start_at_ns: int, state: _StreamState, result: ClientResult) -> None:
    latency = result.latency_ns
    histogram = result.histogram
    buckets = len(histogram)
    clock = time.time_ns
    try:
        async for message in call:
            now = clock()
            if message.WhichOneof("event") != "piece":
                state.status = "completed"
                continue
            # A client that fell behind gets several tokens merged into one piece: one stamp each.
            stamps = message.piece.text.split()
            latency.extend(now - int(stamp) for stamp in stamps)
            if state.first == 0:
                state.first = now
                result.ttft_ns.append(now - started_ns)
            state.last = now
            bucket = (now - start_at_ns) // BUCKET_NS
            if 0 <= bucket < buckets:
                histogram[bucket] += len(stamps)
        if state.status != "completed":
            state.status = "failed: stream ended without Finished"
    except grpc.aio.AioRpcError as exc:
        state.status = f"failed: {exc.code().name}"
        state.last = state.last or clock()
    except asyncio.CancelledError:
        call.cancel()
        raise


async def _run_client(job: ClientJob) -> ClientResult:
    result = ClientResult(histogram=[0] * (int(job.time_limit_s * 1e9) // BUCKET_NS + 50))
    channel_count = max(1, math.ceil(job.streams / job.streams_per_channel))
    # A local subchannel pool gives every channel its own TCP connection, as separate clients would have.
    channels = [
        grpc.aio.insecure_channel(job.targets[i % len(job.targets)], options=[("grpc.use_local_subchannel_pool", 1)])
        for i in range(channel_count)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 15.0)
        stubs: list[Any] = [
            pb_grpc.WorkerStub(c).Run if job.direct else pb_grpc.InferenceStub(c).Generate for c in channels
        ]
        delay_s = (job.start_at_ns - time.time_ns()) / 1e9
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        states = [_StreamState() for _ in range(job.streams)]
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        ramp_start = loop.time()
        for i, state in enumerate(states):
            due = ramp_start + job.ramp_s * i / job.streams  # arrivals spread evenly over the ramp
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            request_id = f"cap-{job.tag}-{i}"
            if job.direct:
                request: Any = pb.RunRequest(request_id=request_id, prompt="load test", max_tokens=job.tokens)
            else:
                request = pb.GenerateRequest(
                    model=MODEL_NAME, prompt="load test", max_tokens=job.tokens, request_id=request_id
                )
            call = stubs[i % len(stubs)](request)
            tasks.append(asyncio.create_task(_one_stream(call, time.time_ns(), job.start_at_ns, state, result)))
        remaining_s = job.time_limit_s - (time.time_ns() - job.start_at_ns) / 1e9
        _, pending = await asyncio.wait(tasks, timeout=max(remaining_s, 0.1))
        # Cut what is still running, a batch at a time (cut_batch 0: all at once, as 1000 clients vanishing would).
        by_task = dict(zip(tasks, states, strict=True))
        still = [t for t in tasks if t in pending]
        batch = job.cut_batch or len(still) or 1
        for first in range(0, len(still), batch):
            now = time.time_ns()
            for task in still[first : first + batch]:
                if not task.done():
                    by_task[task].cut_at = now
                    task.cancel()
            if first + batch < len(still):
                await asyncio.sleep(CUT_INTERVAL_S)
        await asyncio.gather(*tasks, return_exceptions=True)
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        result.cpu_s = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
        for state in states:
            result.first_ns.append(state.first)
            if state.status == "completed":
                result.completed += 1
                result.end_ns.append(state.last)
            elif state.status == "cut":
                result.cut += 1
                result.end_ns.append(state.cut_at or state.last or time.time_ns())
            else:
                result.failed += 1
                result.errors[state.status] += 1
                result.end_ns.append(state.last or time.time_ns())
        result.tokens = len(result.latency_ns)
        return result
    finally:
        for channel in channels:
            await channel.close()


def client_process_main(job: ClientJob, conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a spawned client process: runs the job and sends back its ClientResult."""
    logging.basicConfig(level=logging.WARNING)
    try:
        result = uvloop.run(_run_client(job))
    except Exception as exc:  # reported to the parent, which counts the whole share as failed
        result = ClientResult(error=f"{type(exc).__name__}: {exc}")
    conn.send(result)
    conn.close()


# ---------------------------------------------------------------- measuring a step


@dataclass(frozen=True)
class StepResult:
    path: str  # "coordinator" or "direct"
    streams: int
    offered_tps: float
    relayed_tps: float
    window_s: float
    completed: int
    cut: int
    failed: int
    errors: dict[str, int]
    latency_p50_ms: float
    latency_p99_ms: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    cpu_percent: dict[str, float]  # per process group; 100 = one core
    coordinator_kernel_percent: float  # the part of the coordinator's CPU % spent in the kernel
    coordinator_us_per_token: float  # coordinator CPU time per piece the clients received
    machine_busy_percent: float  # of all cores
    duration_s: float


def percentile(values: array[int] | list[int], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def steady_rate(results: list[ClientResult], start_at_ns: int) -> tuple[float, float]:
    """Tokens/s over the window in which every stream had its first piece and none had ended; and the window."""
    histogram = [sum(h) for h in zip(*(r.histogram for r in results), strict=True)]
    firsts = [f for r in results for f in r.first_ns if f]
    ends = [e for r in results for e in r.end_ns]
    if not firsts or not ends:
        return 0.0, 0.0
    every_stream_started = all(f for r in results for f in r.first_ns)
    lo = (max(firsts) if every_stream_started else min(firsts)) - start_at_ns
    hi = min(ends) - start_at_ns
    first_bucket, last_bucket = math.ceil(lo / BUCKET_NS), hi // BUCKET_NS  # whole buckets inside [lo, hi)
    if last_bucket - first_bucket < 5:  # the streams barely overlapped: use the whole span
        first_bucket, last_bucket = (
            (min(firsts) - start_at_ns) // BUCKET_NS,
            math.ceil((max(ends) - start_at_ns) / BUCKET_NS),
        )
    last_bucket = min(last_bucket, len(histogram))
    window_s = max(last_bucket - first_bucket, 1) * BUCKET_NS / 1e9
    return sum(histogram[first_bucket:last_bucket]) / window_s, window_s


class CpuSampler:
    """CPU seconds of named process groups, and of the whole machine, between two samples."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._processes = {name: [psutil.Process(pid) for pid in pids] for name, pids in groups.items()}
        self._before: dict[str, tuple[float, float]] = {}
        self._machine_before = psutil.cpu_times()
        self._t = time.monotonic()

    def _cpu(self) -> dict[str, tuple[float, float]]:
        """Per group: (user + system, system) CPU seconds so far."""
        out: dict[str, tuple[float, float]] = {}
        for name, processes in self._processes.items():
            total = system = 0.0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
                    system += times.system
            out[name] = (total, system)
        return out

    def start(self) -> None:
        self._before = self._cpu()
        self._machine_before = psutil.cpu_times()
        self._t = time.monotonic()

    def stop(self) -> tuple[dict[str, float], dict[str, float], float, float]:
        """Per group CPU % and kernel CPU % (100 = one core), machine busy % of all cores, seconds since start()."""
        wall = max(time.monotonic() - self._t, 1e-9)
        after = self._cpu()
        machine = psutil.cpu_times()
        idle = (machine.idle + getattr(machine, "iowait", 0.0)) - (
            self._machine_before.idle + getattr(self._machine_before, "iowait", 0.0)
        )
        total = sum(machine) - sum(self._machine_before)
        busy = 100.0 * (1 - idle / total) if total > 0 else math.nan
        cpu = {name: 100.0 * (after[name][0] - self._before[name][0]) / wall for name in after}
        kernel = {name: 100.0 * (after[name][1] - self._before[name][1]) / wall for name in after}
        return cpu, kernel, busy, wall


# ---------------------------------------------------------------- py-spy


class PySpy:
    """Samples one process with py-spy while a step runs; the collapsed stacks go to a file."""

    def __init__(self, binary: str, pid: int, out: Path, native: bool) -> None:
        argv = [binary, "record", "--pid", str(pid), "--format", "raw", "--threads", "--rate", "100", "-o", str(out)]
        argv += ["--native"] if native else ["--nonblocking"]
        self.out = out
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            _, stderr = self._process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, stderr = self._process.communicate(timeout=10)
        if not self.out.exists():
            log.warning("py-spy wrote no profile: %s", (stderr or "").strip()[-500:])


def _frame_name(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (to/file.py)': one entry per function, whatever the line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(Path(path).parts[-2:]) if path else ""
    return f"{name} ({short})" if short else name


def summarize_collapsed(path: Path, top: int = TOP_FUNCTIONS) -> str:
    """Top functions by own and by cumulative samples from py-spy's collapsed ('raw') output."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread (", "process ")):
            threads[frames[0]] += count
            frames = frames[1:]
        names = [_frame_name(f) for f in frames]
        total += count
        if names:
            own[names[-1]] += count
        for name in set(names):
            cumulative[name] += count
    if total == 0:
        return "(no samples)"
    lines = [f"{total} samples ({total / 100:.1f} CPU-seconds at 100 Hz, idle time not sampled)", ""]
    lines += ["| thread | % of samples |", "| --- | ---: |"]
    lines += [f"| {name} | {100 * n / total:.1f} |" for name, n in threads.most_common()]
    for title, counter in (("own", own), ("cumulative", cumulative)):
        lines += ["", f"Top {top} by {title} samples:", "", f"| % {title} | function |", "| ---: | --- |"]
        lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in counter.most_common(top)]
    return "\n".join(lines)


def summarize_cprofile(path: Path, top: int = TOP_FUNCTIONS) -> str:
    """Top functions by own and by cumulative time from a cProfile dump."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        out.write(f"\nTop {top} by {key}:\n")
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------- the benchmark


@dataclass
class Bench:
    args: argparse.Namespace
    work_dir: Path
    swarm: LocalSwarm = field(init=False)
    coordinator: ManagedProcess | None = None
    address: str = ""
    workers: list[ManagedProcess] = field(default_factory=list)
    worker_addresses: tuple[str, ...] = ()
    cprofile_path: Path | None = None
    profiles: list[tuple[str, str]] = field(default_factory=list)  # (title, summary)
    clients: list[multiprocessing.process.BaseProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.swarm = LocalSwarm(log_dir=self.work_dir)

    def py_spy(self) -> str | None:
        beside = Path(sys.executable).with_name("py-spy")
        return str(beside) if beside.exists() else shutil.which("py-spy")

    def start(self) -> None:
        self.swarm.start_redis(self.work_dir / "redis")
        listen = f"127.0.0.1:{free_port()}"
        http = f"127.0.0.1:{free_port()}"
        if self.args.profile and self.py_spy() is None:
            self.cprofile_path = self.work_dir / "coordinator.prof"
            log.info("py-spy not found: running the coordinator under cProfile (%s)", self.cprofile_path)
            argv = [sys.executable, "-m", "cProfile", "-o", str(self.cprofile_path), "-m", "swarm"]
            argv += ["--log-level", "info", "coordinator", "--listen", listen, "--http", http]
            argv += ["--redis", self.swarm.redis_url, "--default-model", MODEL_NAME]
            self.coordinator = ManagedProcess("coordinator", argv, self.work_dir / "coordinator.log").start()
            self.swarm.processes.append(self.coordinator)
        else:
            self.coordinator = self.swarm.start_coordinator(listen, http, "--default-model", MODEL_NAME)
        self.address = listen
        for i in range(self.args.load_workers):
            argv = [sys.executable, "-m", "swarm.bench.load_test_worker", "--coordinator", listen]
            argv += ["--rate", str(self.args.rate), "--worker-id", f"load-test-{i + 1}", "--log-level", "info"]
            argv += ["--max-seconds", "1800"]
            worker = ManagedProcess(f"load-test-worker-{i + 1}", argv, self.work_dir / f"load-test-worker-{i + 1}.log")
            self.swarm.processes.append(worker.start())
            self.workers.append(worker)
        with SwarmClient(listen, timeout_s=3.0) as client:

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

    def _check_alive(self) -> None:
        failed = self.swarm.failed()
        if failed is not None:
            raise RuntimeError(f"{failed.name} exited early; see {self.work_dir / (failed.name + '.log')}")

    def settle(self) -> None:
        """Waits (bounded) until the coordinator has nothing queued and the workers nothing running."""
        with SwarmClient(self.address, timeout_s=3.0) as client:

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

    def run_step(self, streams: int, direct: bool, step_index: int) -> StepResult:
        assert self.coordinator is not None
        self.settle()
        path = "direct" if direct else "coordinator"
        processes = min(self.args.client_processes, streams)
        start_at_ns = time.time_ns() + int(START_DELAY_S * 1e9)
        targets = self.worker_addresses if direct else (self.address,)
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
                tag=f"{step_index}-{path}-{i}",
            )
            receiver, sender = context.Pipe(duplex=False)
            client = context.Process(target=client_process_main, args=(job, sender), daemon=True)
            client.start()
            sender.close()
            self.clients.append(client)
            pipes.append(receiver)
        groups = {
            "coordinator": [self.coordinator.pid],
            "workers": [w.pid for w in self.workers],
            "redis": [p.pid for p in self.swarm.processes if p.name == "redis"],
        }
        sampler = CpuSampler(groups)
        wait_s = (start_at_ns - time.time_ns()) / 1e9
        if wait_s > 0:
            time.sleep(wait_s)
        spy: PySpy | None = None
        py_spy = self.py_spy()
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


# ---------------------------------------------------------------- report


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def render_table(rows: list[StepResult]) -> str:
    header = (
        "| path | streams | offered tok/s | relayed tok/s | window s | completed / cut / failed "
        "| token latency p50 / p99 ms | TTFT p50 / p99 ms | coordinator CPU % (kernel) | coordinator CPU µs/token "
        "| clients CPU % | workers CPU % | redis CPU % | these four CPU % | machine busy % |"
    )
    lines = [header, "|" + " --- |" * 2 + " ---: |" * 13]
    for r in rows:
        cpu = r.cpu_percent
        per_token = f"{r.coordinator_us_per_token:.0f}" if r.path == "coordinator" else "-"
        lines.append(
            f"| {r.path} | {r.streams} | {r.offered_tps:,.0f} | {r.relayed_tps:,.0f} | {r.window_s:.1f} "
            f"| {r.completed} / {r.cut} / {r.failed} | {_ms(r.latency_p50_ms)} / {_ms(r.latency_p99_ms)} "
            f"| {_ms(r.ttft_p50_ms)} / {_ms(r.ttft_p99_ms)} "
            f"| {cpu['coordinator']:.0f} ({r.coordinator_kernel_percent:.0f}) | {per_token} "
            f"| {cpu['clients']:.0f} | {cpu['workers']:.0f} | {cpu['redis']:.0f} "
            f"| {sum(cpu.values()):.0f} | {r.machine_busy_percent:.0f} |"
        )
    return "\n".join(lines)


def render_added_latency(rows: list[StepResult]) -> str:
    direct = {r.streams: r for r in rows if r.path == "direct"}
    lines = [
        "| streams | added latency p50 ms | added latency p99 ms | relayed / direct tok/s |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        d = direct.get(r.streams)
        if r.path != "coordinator" or d is None:
            continue
        share = r.relayed_tps / d.relayed_tps if d.relayed_tps else math.nan
        lines.append(
            f"| {r.streams} | {_ms(r.latency_p50_ms - d.latency_p50_ms)} | {_ms(r.latency_p99_ms - d.latency_p99_ms)} "
            f"| {share:.2f} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m swarm.bench.coordinator_capacity",
        description="Measure what one coordinator relays, fed by load-test workers (benchmark only).",
    )
    parser.add_argument(
        "--streams", default="1,10,100,1000", help="comma-separated stream counts (default %(default)s)"
    )
    parser.add_argument("--tokens-per-stream", type=int, default=400, help="max_tokens of each stream (default 400)")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s each stream is fed at (default 50)")
    parser.add_argument("--load-workers", type=int, default=2, help="load-test worker processes (default 2)")
    parser.add_argument("--client-processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--streams-per-channel", type=int, default=100, help="streams per client connection")
    parser.add_argument(
        "--step-time-limit", type=float, default=15.0, help="cut streams still running after this many s (default 15)"
    )
    parser.add_argument(
        "--ramp", type=float, default=1.0, help="spread the stream starts over this many s (default %(default)s)"
    )
    parser.add_argument(
        "--cut-batch",
        type=int,
        default=20,
        help=f"at the time limit cancel this many streams per {CUT_INTERVAL_S:g} s; 0: all at once (default 20)",
    )
    parser.add_argument("--no-direct", action="store_true", help="skip the clients-to-workers baseline steps")
    parser.add_argument("--profile", action="store_true", help="profile the coordinator (py-spy, else cProfile)")
    parser.add_argument("--profile-native", action="store_true", help="py-spy --native (pauses the coordinator)")
    parser.add_argument("--work-dir", type=Path, default=None, help="logs and profiles (default: a temp dir)")
    args = parser.parse_args(argv)
    try:
        args.stream_counts = [int(s) for s in args.streams.split(",") if s.strip()]
    except ValueError:
        parser.error("--streams takes comma-separated integers")
    if not args.stream_counts or min(args.stream_counts) < 1 or max(args.stream_counts) > 5000:
        parser.error("--streams: each count must be in 1..5000")
    if not 1 <= args.tokens_per_stream <= 100_000 or args.rate <= 0:
        parser.error("--tokens-per-stream must be in 1..100000 and --rate positive")
    if not 1 <= args.load_workers <= 16 or not 1 <= args.client_processes <= 16 or args.streams_per_channel < 1:
        parser.error("--load-workers and --client-processes must be in 1..16, --streams-per-channel >= 1")
    if not 1 <= args.step_time_limit <= 300:
        parser.error("--step-time-limit must be in 1..300 s")
    if not 0 <= args.ramp < args.step_time_limit or args.cut_batch < 0:
        parser.error("--ramp must be in [0, step time limit) and --cut-batch >= 0")
    return args


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="swarm-capacity-")))
        else:
            work_dir = args.work_dir
            work_dir.mkdir(parents=True, exist_ok=True)
        stack.enter_context(_sigterm_as_interrupt())
        bench = Bench(args, work_dir)
        rows: list[StepResult] = []
        try:
            bench.start()
            for i, streams in enumerate(args.stream_counts):
                for direct in (False,) if args.no_direct else (False, True):
                    log.info("step: %d streams %s", streams, "direct to the workers" if direct else "via coordinator")
                    row = bench.run_step(streams, direct, i)
                    log.info(
                        "  %s: %.0f tok/s, %d/%d/%d completed/cut/failed, coordinator CPU %.0f%%",
                        row.path,
                        row.relayed_tps,
                        row.completed,
                        row.cut,
                        row.failed,
                        row.cpu_percent["coordinator"],
                    )
                    rows.append(row)
        except KeyboardInterrupt:
            log.warning("interrupted; stopping every process")
            return 130
        finally:
            bench.stop()
        print(report(args, rows, bench.profiles))
    return 0


def report(args: argparse.Namespace, rows: list[StepResult], profiles: list[tuple[str, str]]) -> str:
    parts = [
        f"## Coordinator relay capacity ({os.cpu_count()} CPU cores, {args.load_workers} load-test workers, "
        f"{args.client_processes} client processes, {args.rate:g} tok/s per stream, "
        f"{args.tokens_per_stream} tokens per stream, starts spread over {args.ramp:g} s, "
        f"steps cut at {args.step_time_limit:g} s)",
        "",
        render_table(rows),
        "",
        "relayed tok/s: pieces received by all clients per second over the window in which every stream was "
        "running (when that is under 0.5 s, e.g. some streams only started near the cut: the whole step). "
        "token latency: client receive time minus the load-test worker's send stamp. "
        f"CPU %: 100 = one core, {os.cpu_count()} cores = {100 * (os.cpu_count() or 1)}; "
        "machine busy %: /proc/stat, of all cores, anything else running on the machine included.",
    ]
    added = render_added_latency(rows)
    if added:
        parts += ["", "### Added by the coordinator (via coordinator minus direct)", "", added]
    failures = Counter[str]()
    for r in rows:
        failures.update(r.errors)
    if failures:
        parts += ["", "Failures: " + ", ".join(f"{k} x{v}" for k, v in failures.most_common())]
    for title, summary in profiles:
        parts += ["", f"### Profile: {title}", "", summary]
    return "\n".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
