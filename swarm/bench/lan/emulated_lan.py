"""EmulatedLan: K emulated PCs on this machine, each a set of cores, with every link between them a LinkRelay.

A PC is a set of cores: every thread of every process placed on it is pinned there. Traffic from
one PC to another goes through a link relay process (link_relay.py) that adds the link's one-way
delay and bandwidth cap; traffic within a PC goes direct. The relay of a link runs on the cores of
the PC it delivers to, as that PC's network stack would: it costs a few percent of a core at the
rates a pipeline sends, so it does not need a core of its own.

Redis and the coordinator live on PC 0; clients (the benchmark or test process) are outside the
LAN and reach the coordinator direct. Workers on other PCs reach the coordinator through a link,
and it reaches them through one, so heartbeats and a whole model's Run calls cross the LAN too.
The processes themselves are started by LocalSwarm, so they are the very processes a user runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from swarm.client import SwarmCallError, SwarmClient
from swarm.launch.local_swarm import (
    LATER_STAGE_TIER,
    REDIS_TIER,
    WORKER_TIER,
    LocalSwarm,
    ManagedProcess,
    free_port,
    wait_until,
)

COORDINATOR_PC = 0
LINK_PREFIX = "link-"  # names of the relay processes


def add_lan_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every LAN bench shares: the model, and the links and PCs it runs on."""
    parser.add_argument("--model", default="default", help="GGUF path or 'default' (Gemma 3 270M)")
    parser.add_argument("--delay-ms", type=float, default=0.25, help="one-way delay of each link")
    parser.add_argument("--gbps", type=float, default=1.0, help="bandwidth cap of each link, Gbit/s")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (one PC's cores)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("--log-level", default="warning")


def lan_from_args(args: argparse.Namespace, scratch: Path) -> EmulatedLan:
    """The two-PC LAN add_lan_flags describes, its processes logging to scratch (and this one at --log-level)."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return EmulatedLan(two_pcs(args.threads), args.delay_ms / 1e3, args.gbps * 1e9, LocalSwarm(log_dir=scratch))


def two_pcs(threads: int) -> list[set[int]]:
    """Two PCs of `threads` cores each from this process's cores (SystemExit saying why when it has too few)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 * threads:
        raise SystemExit(f"two PCs of {threads} core(s) need {2 * threads} cores; this process has {cores}")
    return [set(cores[:threads]), set(cores[threads : 2 * threads])]


def pin_to_cores(pid: int, cores: set[int]) -> None:
    """Pins every thread the process has now; threads it starts later inherit the pinning."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cores)


def allowed_cores(pid: int) -> set[int]:
    """The cores every thread of the process may run on (the union over its threads)."""
    return {core for tid in os.listdir(f"/proc/{pid}/task") for core in os.sched_getaffinity(int(tid))}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class EmulatedLan:
    """PCs (sets of cores) joined by emulated links, on top of a LocalSwarm that starts the processes."""

    pcs: list[set[int]]
    delay_s: float = 0.00025  # one-way, each link and direction
    bandwidth_bps: float = 1e9  # bits per second, each link and direction; 0: no cap
    swarm: LocalSwarm = field(default_factory=LocalSwarm)
    coordinator: str = ""  # its gRPC address, for clients; set by start_coordinator
    placed: dict[int, list[ManagedProcess]] = field(default_factory=dict)  # PC -> its processes, relays included
    links: dict[tuple[int, str], str] = field(default_factory=dict)  # (from PC, target address) -> its relay address

    def __post_init__(self) -> None:
        usable = os.sched_getaffinity(0)
        seen: set[int] = set()
        for index, cores in enumerate(self.pcs):
            if not cores or not cores <= usable:
                raise ValueError(f"PC {index}: cores {sorted(cores)} are not a non-empty subset of {sorted(usable)}")
            if cores & seen:
                raise ValueError(f"PC {index}: cores {sorted(cores & seen)} belong to another PC")
            seen |= cores

    def place(self, process: ManagedProcess, pc: int) -> ManagedProcess:
        """Pins a started process to the PC's cores."""
        pin_to_cores(process.pid, self.pcs[pc])
        self.placed.setdefault(pc, []).append(process)
        return process

    def restart(self, process: ManagedProcess) -> ManagedProcess:
        """SIGKILLs a placed process (a PC losing power) and starts it again on the same PC, same flags and ports."""
        pc = next(pc for pc, processes in self.placed.items() if process in processes)
        process.kill()
        process.start()
        pin_to_cores(process.pid, self.pcs[pc])
        return process

    def reach(self, from_pc: int, to_pc: int, address: str) -> str:
        """The address a process on from_pc dials for `address` on to_pc: itself within a PC, else a link relay's."""
        if from_pc == to_pc:
            return address
        key = (from_pc, address)
        if key not in self.links:
            self.links[key] = self._start_relay(from_pc, to_pc, address)
        return self.links[key]

    def _start_relay(self, from_pc: int, to_pc: int, target: str) -> str:
        listen = f"127.0.0.1:{free_port()}"
        name = f"{LINK_PREFIX}pc{from_pc}-to-pc{to_pc}-{target.rsplit(':', 1)[1]}"
        argv = [sys.executable, "-m", "swarm.bench.lan.link_relay", "--listen", listen, "--target", target]
        argv += ["--delay-ms", str(self.delay_s * 1e3), "--gbps", str(self.bandwidth_bps / 1e9)]
        log_path = self.swarm.log_dir / f"{name}.log" if self.swarm.log_dir is not None else None
        # Stopped with Redis, after everything that talks through it.
        relay = ManagedProcess(name, argv, log_path, REDIS_TIER).start()
        self.swarm.processes.append(relay)
        self.place(relay, to_pc)
        wait_until(lambda: _accepts(listen) or not relay.alive, 15, f"link relay {name}")
        if not relay.alive:
            raise RuntimeError(f"link relay {name} exited:\n{relay.log_tail()}")
        return listen

    def start_coordinator(self, scratch: Path, *extra: str) -> str:
        """Redis (unless the swarm has a URL already) and a coordinator, both on PC 0; returns its address."""
        if not self.swarm.redis_url:
            self.swarm.start_redis(scratch / "redis")
            self.place(self.swarm.processes[-1], COORDINATOR_PC)
        self.coordinator = f"127.0.0.1:{free_port()}"
        self.place(self.swarm.start_coordinator(self.coordinator, "", *extra), COORDINATOR_PC)
        return self.coordinator

    def start_whole_model(self, model: Path, *extra: str, pc: int = 0, name: str = "worker") -> ManagedProcess:
        """A worker serving the whole model on PC pc."""
        return self._start_worker(pc, model, extra, "", name, WORKER_TIER)

    def start_pipeline(
        self, stage_files: list[Path], *extra: str, pcs: list[int], name: str = "stage"
    ) -> list[ManagedProcess]:
        """One worker per stage file, stage i on PC pcs[i], last to first, each dialling the next through its link."""
        if len(pcs) != len(stage_files):
            raise ValueError(f"{len(stage_files)} stage files but {len(pcs)} PCs given")
        ports = [free_port() for _ in stage_files]
        started = []
        for index in reversed(range(len(stage_files))):
            following = ""
            if index + 1 < len(stage_files):
                following = self.reach(pcs[index], pcs[index + 1], f"127.0.0.1:{ports[index + 1]}")
            tier = WORKER_TIER if index == 0 else LATER_STAGE_TIER
            wiring = ("--listen", f"127.0.0.1:{ports[index]}", *extra)
            process = self._start_worker(pcs[index], stage_files[index], wiring, following, f"{name}-{index}", tier)
            started.append(process)
        return started

    def _start_worker(
        self, pc: int, model: Path, extra: tuple[str, ...], next_stage: str, name: str, tier: int
    ) -> ManagedProcess:
        if not self.coordinator:
            raise RuntimeError("start the coordinator first")
        listen = next((extra[i + 1] for i, flag in enumerate(extra[:-1]) if flag == "--listen"), "")
        if not listen:
            listen = f"127.0.0.1:{free_port()}"
            extra = ("--listen", listen, *extra)
        # The coordinator dials the worker through the link from PC 0, the worker it through the link back.
        wiring = ["--advertise", self.reach(COORDINATOR_PC, pc, listen)]
        if next_stage:
            wiring += ["--next-stage", next_stage]
        coordinator = self.reach(pc, COORDINATOR_PC, self.coordinator)
        process = self.swarm.start_worker(coordinator, model, *extra, *wiring, name=name, tier=tier)
        return self.place(process, pc)

    def wait_for_workers(self, count: int, what: str, timeout_s: float = 180.0) -> None:
        """Returns once `count` workers are up at the coordinator; raises with its log if a process exited."""

        def all_up() -> bool:
            dead = self.swarm.failed()
            if dead is not None:
                raise RuntimeError(f"{dead.name} exited:\n{dead.log_tail()}")
            try:
                with SwarmClient(self.coordinator, retries=0) as client:
                    return sum(1 for w in client.status().workers if w.up) == count
            except SwarmCallError:
                return False

        wait_until(all_up, timeout_s, what)

    def link_cpu_seconds(self) -> float:
        """CPU time all link relays have used so far: what the emulation itself costs the PCs."""
        relays = [p for processes in self.placed.values() for p in processes if p.name.startswith(LINK_PREFIX)]
        return sum(cpu_seconds(p.pid) for p in relays if p.alive)

    def stop(self) -> list[ManagedProcess]:
        """Stops every process (see LocalSwarm.stop); returns those that had to be SIGKILLed."""
        self.placed.clear()
        self.links.clear()
        return self.swarm.stop()
