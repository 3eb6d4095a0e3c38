"""`--max-cpu` and `--max-memory`: the owner's caps on a worker, and which of the operating system's means keeps them.

systemd keeps them where it runs, in the worker's cgroup: the unit `swarm join --install` writes
carries CPUQuota= and MemoryMax=, and a worker started by hand in a desktop session runs itself
again in a transient scope with the same (`systemd-run --user --scope`). Elsewhere (a container, a
PC without systemd) the worker keeps what it can itself: no more llama.cpp threads than its share of
the cores, nice and idle I/O priority, and a model file larger than the memory cap refused at start.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

# "unit" in the unit and "scope" before re-running in a scope: systemd keeps the caps, the worker must not re-run
# itself. An operator who wants no scope sets "itself".
KEPT_BY_ENV = "SWARM_LIMITS_KEPT_BY"
MEMORY_HIGH_SHARE = 0.9  # past this share of --max-memory systemd reclaims and slows the worker before killing it
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
SELF_NICE = 10  # as the unit's Nice=: the owner's programs first, the worker's heartbeats still prompt
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}  # syscall numbers; Python's os module has no ioprio_set
_IOPRIO_IDLE = 3 << 13  # IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT


class KeptBy(StrEnum):
    NOTHING = "no limits"
    UNIT = "its systemd unit"
    SCOPE = "a systemd scope"
    ITSELF = "itself (no systemd here): fewer threads, nice 10, idle I/O"


@dataclass(frozen=True)
class OwnerLimits:
    cpu_share: float = 1.0  # of all the PC's cores: --max-cpu 50% on 8 cores is 4 cores' worth
    memory_bytes: int = 0  # 0: no cap

    def __post_init__(self) -> None:
        if not 0 < self.cpu_share <= 1:
            raise ValueError("--max-cpu must be above 0% and at most 100%")
        if self.memory_bytes < 0:
            raise ValueError("--max-memory cannot be negative")

    @property
    def any(self) -> bool:
        return self.cpu_share < 1 or self.memory_bytes > 0

    def threads(self, wanted: int, cores: int) -> int:
        """At most the share's whole cores, at least one: llama.cpp's threads wait for each other at every step,
        so threads beyond the share only queue for the same quota."""
        if self.cpu_share >= 1:
            return wanted  # no cap: the owner may give it more threads than cores
        return max(1, min(wanted, math.floor(self.cpu_share * cores + 1e-9)))

    def systemd_properties(self, cores: int) -> list[str]:
        """The cgroup settings that keep the caps (CPUQuota counts 100% per core); [] without caps."""
        properties = []
        if self.cpu_share < 1:
            properties.append(f"CPUQuota={max(1, round(self.cpu_share * cores * 100))}%")
        if self.memory_bytes:
            properties.append(f"MemoryHigh={int(self.memory_bytes * MEMORY_HIGH_SHARE)}")
            properties.append(f"MemoryMax={self.memory_bytes}")
        return properties

    def describe(self, cores: int) -> str:
        """For `swarm local`: "" without caps."""
        parts = []
        if self.cpu_share < 1:
            parts.append(f"{self.cpu_share:.0%} of {cores} cores")
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes / 1024**3:.1f} GiB of memory")
        return " and ".join(parts)

    def check_model_fits(self, model_path: Path) -> None:
        """A model file larger than the memory cap cannot be served within it: say so before loading it."""
        size = model_path.stat().st_size
        if self.memory_bytes and size > self.memory_bytes:
            raise ValueError(
                f"the model file {model_path.name} ({size / 1024**3:.2f} GiB) is larger than --max-memory "
                f"({self.memory_bytes / 1024**3:.2f} GiB): raise the limit or serve a smaller model or a pipeline stage"
            )


NO_LIMITS = OwnerLimits()


def parse_cpu_share(text: str) -> float:
    """`50%` as 0.5: a share of all the PC's cores."""
    try:
        share = float(text.strip().removesuffix("%")) / 100
    except ValueError:
        raise ValueError(f"--max-cpu {text!r}: give a share of this PC's cores such as 50%") from None
    if not 0 < share <= 1:
        raise ValueError(f"--max-cpu {text!r}: give a share above 0% and at most 100%")
    return share


def parse_memory_size(text: str) -> int:
    """`4G`, `512M`, `1.5GiB` or bytes; K, M, G and T count in 1024s, as systemd's do."""
    found = _SIZE.fullmatch(text.strip())
    if found is None or float(found[1]) <= 0:
        raise ValueError(f"--max-memory {text!r}: give a size such as 4G or 512M")
    return int(float(found[1]) * _UNITS[found[2].upper()])


def kept_by(limits: OwnerLimits, environ: dict[str, str], user_systemd: bool) -> KeptBy:
    """Who keeps the caps of a worker started with `environ`, where a user systemd answers or not."""
    if not limits.any:
        return KeptBy.NOTHING
    chosen = {"unit": KeptBy.UNIT, "scope": KeptBy.SCOPE, "itself": KeptBy.ITSELF}.get(environ.get(KEPT_BY_ENV, ""))
    if chosen is not None:
        return chosen
    return KeptBy.SCOPE if user_systemd else KeptBy.ITSELF


def scope_command(limits: OwnerLimits, cores: int, argv: list[str]) -> list[str]:
    """argv run again in a transient user scope with the caps (systemd-run runs it in place, same terminal)."""
    properties = [word for setting in limits.systemd_properties(cores) for word in ("-p", setting)]
    return ["systemd-run", "--user", "--scope", "--quiet", *properties, "--", *argv]


def user_systemd_answers() -> bool:
    """Whether this user's systemd manager runs (a desktop session): then it can hold the worker in a scope."""
    if shutil.which("systemd-run") is None or shutil.which("systemctl") is None:
        return False
    try:
        state = subprocess.run(
            ["systemctl", "--user", "is-system-running"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return state in ("running", "degraded", "starting")


def keep_limits(limits: OwnerLimits, argv: list[str]) -> KeptBy:
    """Puts the caps in force for this process, early (threads started later inherit nice and I/O class).

    In a desktop session it runs `swarm argv` again in a systemd scope and does not return."""
    decided = limits.any and KEPT_BY_ENV not in os.environ
    keeper = kept_by(limits, dict(os.environ), user_systemd_answers() if decided else False)
    if keeper is KeptBy.SCOPE and os.environ.get(KEPT_BY_ENV) != "scope":
        command = scope_command(limits, os.cpu_count() or 1, [sys.executable, "-m", "swarm", *argv])
        log.info("running again in a systemd scope that keeps its limits: %s", " ".join(command))
        os.execvpe(command[0], command, {**os.environ, KEPT_BY_ENV: "scope"})
    if keeper is KeptBy.ITSELF:
        os.setpriority(os.PRIO_PROCESS, 0, max(SELF_NICE, os.getpriority(os.PRIO_PROCESS, 0)))
        _idle_io()
        log.info("no systemd to keep --max-cpu/--max-memory: it runs fewer threads at nice %d, idle I/O", SELF_NICE)
    return keeper


def _idle_io() -> None:
    number = _IOPRIO_SET.get(platform.machine())
    libc = ctypes.CDLL(None, use_errno=True)
    if number is None or libc.syscall(number, 1, 0, _IOPRIO_IDLE) != 0:  # 1: IOPRIO_WHO_PROCESS, 0: this one
        log.info("could not set idle I/O priority on this system; its disk reads keep their usual priority")
