"""The owner's load as the worker sees it: what other processes take of the worker's cores, and how short memory is.

The pure parts (parsing /proc text, the sample between two readings, the owner's thresholds) are
separate from `read_load`, the thin part that opens the files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OWNER_BUSY = "its owner is busy"
MEMORY_SHORT = "memory is short"


@dataclass(frozen=True)
class LoadReading:
    """One look at /proc: busy CPU seconds on the worker's cores, its own CPU seconds, memory."""

    at: float  # time.monotonic()
    cores: int  # the CPUs the worker may run on
    cores_busy_s: float  # CPU time spent busy on those CPUs since boot, by everyone
    own_cpu_s: float  # CPU time of the worker's process since it started
    memory_available: float  # MemAvailable / MemTotal
    memory_pressure: float  # /proc/pressure/memory "some avg10" (% of time stalled); 0 where absent


@dataclass(frozen=True)
class LoadSample:
    """What happened between two readings."""

    others_share: float  # the part of the worker's cores other processes used (1.0 = all of them)
    memory_available: float
    memory_pressure: float


@dataclass(frozen=True)
class OwnerThresholds:
    """Past these the owner counts as busy (`--owner-cpu`, memory defaults)."""

    others_share: float = 0.30
    memory_available: float = 0.10  # below this fraction of RAM free
    memory_pressure: float = 20.0  # above this % of time stalled on memory

    def busy(self, sample: LoadSample) -> str:
        """Why the owner counts as busy in this sample ("" when not)."""
        if sample.memory_available < self.memory_available or sample.memory_pressure > self.memory_pressure:
            return MEMORY_SHORT
        if sample.others_share > self.others_share:
            return OWNER_BUSY
        return ""


def busy_seconds(stat_text: str, cpus: set[int]) -> float:
    """Busy CPU seconds since boot on `cpus`, from /proc/stat's per-CPU lines (idle and iowait are not busy)."""
    ticks = 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        fields = [int(value) for value in rest.split()]
        # user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user and nice]
        ticks += sum(fields[:8]) - fields[3] - fields[4]
    return ticks / CLOCK_TICKS


def memory_available(meminfo_text: str) -> float:
    """MemAvailable / MemTotal from /proc/meminfo."""
    values = {}
    for line in meminfo_text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            values[key] = int(rest.split()[0])
    return values["MemAvailable"] / values["MemTotal"]


def memory_pressure(pressure_text: str) -> float:
    """The "some avg10" figure of /proc/pressure/memory."""
    for line in pressure_text.splitlines():
        if line.startswith("some "):
            fields = dict(field.split("=") for field in line.split()[1:])
            return float(fields["avg10"])
    return 0.0


def sample_between(before: LoadReading, after: LoadReading) -> LoadSample:
    (
        """Others' share of the worker's cores: everyone's busy time there less the worker's own, over the time passed
    (between 0 and 1: /proc/stat counts whole ticks)."""
        ""
    )
    capacity = max(after.at - before.at, 1e-6) * after.cores
    others = (after.cores_busy_s - before.cores_busy_s) - (after.own_cpu_s - before.own_cpu_s)
    return LoadSample(min(1.0, max(0.0, others / capacity)), after.memory_available, after.memory_pressure)


def read_load(proc: Path = Path("/proc")) -> LoadReading:
    """Reads /proc now; the worker's cores are its current affinity (it may be pinned after it starts)."""
    cpus = os.sched_getaffinity(0)
    return LoadReading(
        at=time.monotonic(),
        cores=len(cpus),
        cores_busy_s=busy_seconds((proc / "stat").read_text(), cpus),
        own_cpu_s=time.process_time(),
        memory_available=memory_available((proc / "meminfo").read_text()),
        memory_pressure=_pressure(proc / "pressure" / "memory"),
    )


def _pressure(path: Path) -> float:
    try:
        return memory_pressure(path.read_text())
    except OSError:  # no PSI in this kernel, or not readable in this container
        return 0.0
