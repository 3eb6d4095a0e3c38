"""What one capacity step measures: its StepResult, the steady relayed rate, percentiles and CPU sampling."""

from __future__ import annotations

import contextlib
import math
import time
from array import array
from dataclasses import dataclass

import psutil

from swarm.bench.capacity_clients import BUCKET_NS, ClientResult


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
