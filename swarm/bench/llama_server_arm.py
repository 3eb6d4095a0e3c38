"""`swarm bench --against llama-server`: a one-worker swarm against llama.cpp's llama-server, same client.

Both serve the same model with the same threads, slots and per-slot context; one stdlib OpenAI
client (completions_load) sends both the same greedy non-streaming /v1/completions, one arm at
a time, the arms alternating. llama-server is not a dependency: scripts/build_llama_server.sh
builds it from the llama.cpp that the pinned llama-cpp-python vendors.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import logging
import os
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from swarm.bench.completions_load import CompletionBody, LoadRun, measure_completions
from swarm.bench.engine_vs_bare import fresh_prompts, start_swarm
from swarm.engine import OPENMP_SET_BY_SWARM
from swarm.gguf_files.default_model import cache_dir, resolve_model
from swarm.launch.local_swarm import LocalSwarm, ManagedProcess, free_port, interrupt_on_stop_signals, wait_until

log = logging.getLogger(__name__)

CONTEXT_PER_SLOT = 1024  # what `swarm bench` gives its worker
DEFAULT_LEVELS = "1,8"
TARGETS = {1: 0.97, 8: 1.0}  # issue 14: swarm / llama-server at 1 and 8 clients


def llama_server_binary(explicit: Path | None = None) -> Path | None:
    """The llama-server to run: the one named, $SWARM_LLAMA_SERVER, the build script's, or one on PATH."""
    if explicit is not None:
        return explicit if explicit.is_file() else None
    candidates = [
        os.environ.get("SWARM_LLAMA_SERVER", ""),
        str(built_llama_server()),
        shutil.which("llama-server") or "",
    ]
    return next((Path(c) for c in candidates if c and os.access(c, os.X_OK)), None)


def built_llama_server() -> Path:
    """Where scripts/build_llama_server.sh puts the llama-server of the installed llama-cpp-python's llama.cpp."""
    version = importlib.metadata.version("llama-cpp-python")
    return cache_dir() / "llama-server" / version / "bin" / "llama-server"


def llama_server_argv(binary: Path, model: Path, port: int, threads: int, slots: int, context: int) -> list[str]:
    """llama-server on loopback with the worker's shape: `slots` sequences of `context` tokens, continuous batching."""
    return [
        str(binary),
        *("-m", str(model), "--host", "127.0.0.1", "--port", str(port)),
        *("-np", str(slots), "-c", str(context * slots), "-t", str(threads), "-tb", str(threads)),
        *("--cont-batching", "--no-webui"),
    ]


def http_ok(host: str, port: int, path: str) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass(frozen=True)
class Arm:
    name: str
    port: int  # its OpenAI HTTP API on 127.0.0.1


@dataclass(frozen=True)
class Level:
    """Every round at one client count: llama-server's and the swarm's runs, round by round."""

    clients: int
    llama_server: list[LoadRun]
    swarm: list[LoadRun]

    def median(self, runs: list[LoadRun]) -> float:
        return statistics.median(r.tokens_per_s for r in runs)

    @property
    def ratio(self) -> float:
        """Swarm over llama-server, of the medians."""
        return self.median(self.swarm) / self.median(self.llama_server)

    @property
    def round_ratios(self) -> list[float]:
        return [s.tokens_per_s / ls.tokens_per_s for s, ls in zip(self.swarm, self.llama_server, strict=True)]


def arm_order(round_index: int, level_index: int) -> tuple[str, str]:
    """Which arm goes first: it changes every round and level, so drift over the run hits both alike."""
    return ("swarm", "llama-server") if (round_index + level_index) % 2 == 0 else ("llama-server", "swarm")


def parse_levels(text: str, slots: int) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(f"swarm bench: --concurrency must be comma-separated integers, not {text!r}") from None
    if min(levels) < 1 or max(levels) > slots:
        raise SystemExit(f"swarm bench --against llama-server: --concurrency levels must be in 1..{slots} (--slots)")
    return levels


def measure_arms(arms: dict[str, Arm], levels: list[int], repeats: int, max_tokens: int) -> list[Level]:
    """Rounds of every level, each arm in turn on the same fresh prompts (no prefix cache can flatter either)."""
    warm = [CompletionBody(p, max_tokens) for p in fresh_prompts(0, max(levels))]
    for arm in arms.values():  # warm both: graphs built, caches allocated, connections set up
        measure_completions("127.0.0.1", arm.port, warm)
    runs: dict[tuple[int, str], list[LoadRun]] = {(c, name): [] for c in levels for name in arms}
    for round_index in range(repeats):
        for level_index, clients in enumerate(levels):
            run_number = 1 + round_index * len(levels) + level_index
            bodies = [CompletionBody(p, max_tokens) for p in fresh_prompts(run_number, clients)]
            for name in arm_order(round_index, level_index):
                run = measure_completions("127.0.0.1", arms[name].port, bodies)
                runs[clients, name].append(run)
                log.info("round %d, %d clients, %s: %.1f tok/s", round_index + 1, clients, name, run.tokens_per_s)
    return [Level(c, runs[c, "llama-server"], runs[c, "swarm"]) for c in levels]


def format_levels(levels: list[Level], header: str) -> str:
    lines = [
        header,
        "",
        "| clients | llama-server tok/s | swarm tok/s | swarm / llama-server | each round | target | "
        "tokens per request (llama-server / swarm) | latency p50 ms (llama-server / swarm) |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for level in levels:
        ls, sw = level.llama_server, level.swarm
        target = TARGETS.get(level.clients)
        met = "" if target is None else f">= {target:.2f} ({'met' if level.ratio >= target else 'not met'})"
        lines.append(
            f"| {level.clients} | {level.median(ls):.1f} | {level.median(sw):.1f} | **{level.ratio:.2f}** | "
            f"{', '.join(f'{r:.2f}' for r in level.round_ratios)} | {met} | "
            f"{_per_request(ls):.1f} / {_per_request(sw):.1f} | "
            f"{_latency_ms(ls):.0f} / {_latency_ms(sw):.0f} |"
        )
    return "\n".join(lines)


def _per_request(runs: list[LoadRun]) -> float:
    return statistics.mean(r.completion_tokens / r.streams for r in runs)


def _latency_ms(runs: list[LoadRun]) -> float:
    return statistics.median(r.latency_p50_s for r in runs) * 1000


def run_against_llama_server(args: argparse.Namespace) -> int:
    """Starts both arms, measures them alternately, prints (and with --markdown writes) the table."""
    binary = llama_server_binary(args.llama_server)
    if binary is None:
        raise SystemExit(
            "swarm bench --against llama-server: no llama-server binary; build one with "
            "scripts/build_llama_server.sh, or name one with --llama-server PATH or $SWARM_LLAMA_SERVER"
        )
    if args.stages > 1:
        raise SystemExit("swarm bench --against llama-server compares one worker: leave --stages at 1")
    model = resolve_model(args.model)
    levels = parse_levels(args.concurrency or DEFAULT_LEVELS, args.slots)
    interrupt_on_stop_signals()
    load_before = os.getloadavg()[0]  # other work on a shared machine shows here, and in the rounds' spread
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as scratch:
        swarm = LocalSwarm(log_dir=Path(scratch))
        server_port = free_port()
        argv = llama_server_argv(binary, model, server_port, args.threads, args.slots, CONTEXT_PER_SLOT)
        # llama-server runs as a user would start it: without the OpenMP settings swarm gave this process.
        server = ManagedProcess("llama-server", argv, Path(scratch) / "llama-server.log", unset_env=OPENMP_SET_BY_SWARM)
        try:
            server.start()
            swarm_port = free_port()
            start_swarm(swarm, Path(scratch), model, args.threads, args.slots, http=f"127.0.0.1:{swarm_port}")
            wait_until(lambda: http_ok("127.0.0.1", server_port, "/health") or not server.alive, 120, "llama-server")
            if not server.alive:
                tail = (Path(scratch) / "llama-server.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"swarm bench: llama-server exited at startup:\n{tail}")
            arms = {"llama-server": Arm("llama-server", server_port), "swarm": Arm("swarm", swarm_port)}
            measured = measure_arms(arms, levels, args.repeats, args.max_tokens)
        finally:
            server.stop()
            swarm.stop()
    header = (
        f"model {model.name}; {args.threads} threads and {args.slots} slots of {CONTEXT_PER_SLOT} tokens each for "
        f"one swarm worker (with its coordinator and redis-server) and for llama-server ({binary}); "
        f"non-streaming /v1/completions, max_tokens {args.max_tokens}, temperature 0, one stdlib client; "
        f"median of {args.repeats} rounds, arms alternating; shared cores ({os.cpu_count()} CPUs, no pinning), "
        f"1-minute load average {load_before:.1f} before the run and {os.getloadavg()[0]:.1f} after it"
    )
    table = format_levels(measured, header)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0
