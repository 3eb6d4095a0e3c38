"""The owner-load sensor's pure parts: /proc text parsed, others' share of the worker's cores, the thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.worker.owner_load import (
    CLOCK_TICKS,
    MEMORY_SHORT,
    OWNER_BUSY,
    LoadReading,
    LoadSample,
    OwnerThresholds,
    busy_seconds,
    memory_available,
    memory_pressure,
    read_load,
    sample_between,
)

STAT = """cpu  900 0 100 5000 50 0 0 0 0 0
cpu0 400 0 100 2000 50 10 5 0 300 0
cpu1 500 0 0 3000 0 0 0 0 0 0
intr 12345
procs_running 3
"""


def test_busy_time_counts_the_worker_s_cpus_only_and_not_idle_iowait_or_guest_twice() -> None:
    assert busy_seconds(STAT, {0}) == pytest.approx((400 + 100 + 10 + 5) / CLOCK_TICKS)
    assert busy_seconds(STAT, {1}) == pytest.approx(500 / CLOCK_TICKS)
    assert busy_seconds(STAT, {0, 1}) == pytest.approx(1015 / CLOCK_TICKS)


def test_memory_figures_come_from_meminfo_and_pressure_stall_information() -> None:
    meminfo = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n"
    assert memory_available(meminfo) == pytest.approx(0.25)
    pressure = "some avg10=12.50 avg60=3.00 avg300=1.00 total=99\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=9\n"
    assert memory_pressure(pressure) == 12.5


def reading(at: float, busy: float, own: float, cores: int = 1) -> LoadReading:
    return LoadReading(at, cores, busy, own, 0.8, 0.0)


def test_others_share_is_busy_time_less_the_worker_s_own_over_its_cores_and_the_time_passed() -> None:
    # One core, 0.5 s: the core was busy the whole time, the worker used 0.1 s of it: others took 80%.
    assert sample_between(reading(10.0, 100.0, 5.0), reading(10.5, 100.5, 5.1)).others_share == pytest.approx(0.8)
    # Two cores, 1 s: 1.2 s busy, 1.0 of it the worker's: others 10%.
    assert sample_between(reading(0, 0, 0, 2), reading(1, 1.2, 1.0, 2)).others_share == pytest.approx(0.1)
    # Tick rounding can make own time exceed the busy time: never a negative share.
    assert sample_between(reading(0, 0, 0), reading(0.5, 0.4, 0.45)).others_share == 0.0
    # Nor one past the whole of its cores (a tick more than the time passed), which `--owner-cpu 100%` must never see.
    assert sample_between(reading(0, 0, 0), reading(0.5, 0.51, 0.0)).others_share == 1.0


def test_thresholds_say_why_the_owner_counts_as_busy() -> None:
    limits = OwnerThresholds()
    assert limits.busy(LoadSample(0.1, 0.5, 0.0)) == ""
    assert limits.busy(LoadSample(0.5, 0.5, 0.0)) == OWNER_BUSY
    assert limits.busy(LoadSample(0.0, 0.05, 0.0)) == MEMORY_SHORT
    assert limits.busy(LoadSample(0.0, 0.5, 50.0)) == MEMORY_SHORT
    assert OwnerThresholds(others_share=0.6).busy(LoadSample(0.5, 0.5, 0.0)) == ""


def test_read_load_reads_this_machine(tmp_path: Path) -> None:
    now = read_load()
    assert now.cores >= 1 and now.cores_busy_s > 0 and 0 < now.memory_available <= 1
    (tmp_path / "stat").write_text(STAT)
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemAvailable: 50 kB\n")
    faked = read_load(tmp_path)  # no pressure file: no pressure
    assert faked.memory_available == 0.5 and faked.memory_pressure == 0.0
