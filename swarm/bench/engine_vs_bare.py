"""`swarm bench`: the swarm against bare llama.cpp on the same model and threads, side by side in one run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from swarm.bench.bare import DecodeRun, batched_decode, llama_cpp_python_single
from swarm.bench.swarm_load import SwarmRun, measure_swarm, wait_for_a_worker
from swarm.engine.llama_adapter import LlamaModel
from swarm.gguf_files.default_model import resolve_model
from swarm.gguf_files.stage_files import cached_split
from swarm.launch.local_swarm import LocalSwarm, free_port, interrupt_on_stop_signals

log = logging.getLogger(__name__)

PROMPTS = [
    "The history of the printing press begins",
    "Here is a short story about a lighthouse keeper:",
    "The three laws of thermodynamics state that",
    "A recipe for bread needs flour, water,",
    "In the year 2050, cities will",
    "The best way to learn a new language is",
    "Photosynthesis is the process by which",
    "Dear hiring manager, I am writing to",
    "The river wound through the valley and",
    "To install the software, first open",
    "The economy of ancient Rome depended on",
    "My favourite memory from childhood is",
    "The main difference between a virus and a bacterium is",
    "Once the storm had passed, the village",
    "A good database index speeds up queries because",
    "The first thing every gardener should know is",
]

T = TypeVar("T")


def fresh_prompts(run: int, count: int) -> list[str]:
    """Prompts no earlier run used, so the worker's prefix cache cannot flatter its prefill times."""
    return [f"Run {run}, text {i}. {prompt}" for i, prompt in enumerate(PROMPTS[:count])]


@dataclass(frozen=True)
class Row:
    streams: int
    bare: DecodeRun
    swarm: SwarmRun


def median_run(runs: list[T], key: Callable[[T], float]) -> T:
    return sorted(runs, key=key)[len(runs) // 2]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "bench", help="benchmark a local swarm against bare llama.cpp (or llama-server), side by side"
    )
    p.add_argument("--model", default="default", help="GGUF path or 'default' (Gemma 3 270M)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--stages", type=int, default=1, help="serve the model as a pipeline of K local stage workers")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument(
        "--concurrency",
        default=None,
        help="comma-separated stream counts (default 1,2,4,8,16; against llama-server 1,8)",
    )
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    p.add_argument(
        "--against",
        choices=("bare", "llama-server"),
        default="bare",
        help="bare: llama.cpp called in-process (default); llama-server: llama.cpp's own server, "
        "both driven by one OpenAI client over HTTP (build it with scripts/build_llama_server.sh)",
    )
    p.add_argument(
        "--llama-server", type=Path, default=None, help="the llama-server binary (default: the build script's)"
    )
    p.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    if args.against == "llama-server":
        from swarm.bench.llama_server_arm import run_against_llama_server  # it imports this module

        return run_against_llama_server(args)
    model_path = resolve_model(args.model)
    levels = [int(c) for c in (args.concurrency or "1,2,4,8,16").split(",")]
    if max(levels) > len(PROMPTS) or min(levels) < 1:
        raise SystemExit(f"swarm bench: --concurrency levels must be in 1..{len(PROMPTS)}")
    interrupt_on_stop_signals()
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as scratch:
        swarm = LocalSwarm(log_dir=Path(scratch))
        try:
            address = start_swarm(swarm, Path(scratch), model_path, args.threads, args.slots, args.stages)
            report = measure_all(address, model_path, levels, args.threads, args.max_tokens, args.repeats)
        finally:
            swarm.stop()
    table = format_report(report, model_path, args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


def start_swarm(
    swarm: LocalSwarm, scratch: Path, model: Path, threads: int, slots: int, stages: int = 1, http: str = ""
) -> str:
    """Starts redis-server, a coordinator (with its OpenAI HTTP API on `http`, if given) and the workers;
    returns the coordinator's gRPC address once a worker is up."""
    swarm.start_redis(scratch / "redis")
    address = f"127.0.0.1:{free_port()}"
    swarm.start_coordinator(address, http)
    worker_args = ["--threads", str(threads), "--slots", str(slots), "--context", "1024"]
    if stages > 1:
        swarm.start_pipeline(address, cached_split(model, stages, scratch / "stages"), *worker_args)
    else:
        swarm.start_worker(address, model, *worker_args)

    wait_for_a_worker(address)
    return address


@dataclass(frozen=True)
class Report:
    single_bare: DecodeRun
    single_swarm: SwarmRun
    rows: list[Row]


def measure_all(
    address: str, model_path: Path, levels: list[int], threads: int, max_tokens: int, repeats: int
) -> Report:
    model = LlamaModel(model_path)
    asyncio.run(measure_swarm(address, PROMPTS[:2], 8))  # warm the worker's caches and channels
    batched_decode(model, PROMPTS[:1], 8, threads)
    singles_bare, singles_swarm = [], []
    rows = []
    runs = iter(range(1, 1_000_000))
    for _ in range(repeats):  # bare and swarm alternate so machine drift hits both alike
        prompt = fresh_prompts(next(runs), 1)[0]
        singles_bare.append(llama_cpp_python_single(model_path, prompt, max_tokens, threads))
        singles_swarm.append(asyncio.run(measure_swarm(address, [prompt], max_tokens)))
    for streams in levels:
        bare_runs, swarm_runs = [], []
        for _ in range(repeats):
            prompts = fresh_prompts(next(runs), streams)
            bare_runs.append(batched_decode(model, prompts, max_tokens, threads))
            swarm_runs.append(asyncio.run(measure_swarm(address, prompts, max_tokens)))
            time.sleep(0.2)
        rows.append(
            Row(
                streams,
                median_run(bare_runs, lambda r: r.decode_tokens_per_s),
                median_run(swarm_runs, lambda r: r.decode_tokens_per_s),
            )
        )
        log.info("measured %d streams", streams)
    model.close()
    return Report(
        median_run(singles_bare, lambda r: r.decode_tokens_per_s),
        median_run(singles_swarm, lambda r: r.decode_tokens_per_s),
        rows,
    )


def format_report(report: Report, model_path: Path, args: argparse.Namespace) -> str:
    sb, ss = report.single_bare, report.single_swarm
    lines = [
        f"model {model_path.name}, {args.threads} threads, "
        + (f"a {args.stages}-stage pipeline, " if args.stages > 1 else "one worker with ")
        + f"{args.slots} slots, "
        f"{args.max_tokens} tokens per stream, greedy, median of {args.repeats} runs",
        "",
        "| single stream | bare llama-cpp-python | swarm | swarm / bare |",
        "| --- | ---: | ---: | ---: |",
        f"| decode tok/s | {sb.decode_tokens_per_s:.1f} | {ss.decode_tokens_per_s:.1f} | "
        f"{ss.decode_tokens_per_s / sb.decode_tokens_per_s:.2f} |",
        f"| time to first token (ms) | {sb.first_token_s * 1000:.1f} | {ss.first_token_p50_s * 1000:.1f} | "
        f"+{(ss.first_token_p50_s - sb.first_token_s) * 1000:.1f} ms |",
        "",
        "| streams | bare batched tok/s | bare prefill ms | swarm aggregate tok/s | swarm / bare | "
        "swarm per-stream tok/s | TTFT p50 ms | TTFT p95 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report.rows:
        b, s = row.bare, row.swarm
        lines.append(
            f"| {row.streams} | {b.decode_tokens_per_s:.1f} | {b.first_token_s * 1000:.1f} | "
            f"{s.decode_tokens_per_s:.1f} | {s.decode_tokens_per_s / b.decode_tokens_per_s:.2f} | "
            f"{s.per_stream_tokens_per_s:.1f} | {s.first_token_p50_s * 1000:.1f} | {s.first_token_p95_s * 1000:.1f} |"
        )
    one = next((r for r in report.rows if r.streams == 1), None)
    if one is not None:
        lines.append("")
        added_ms = (one.swarm.first_token_p50_s - one.bare.first_token_s) * 1000
        lines.append(
            f"bare batched 1-stream prefill {one.bare.first_token_s * 1000:.1f} ms; swarm TTFT at 1 stream "
            f"{one.swarm.first_token_p50_s * 1000:.1f} ms (added {added_ms:.1f} ms)"
        )
    eight = [r for r in report.rows if r.streams == 8]
    if eight and one is not None:
        lines.append(
            f"bare batched 8 vs 1: {eight[0].bare.decode_tokens_per_s / one.bare.decode_tokens_per_s:.2f}x; "
            f"swarm 8 vs bare 1: {eight[0].swarm.decode_tokens_per_s / one.bare.decode_tokens_per_s:.2f}x"
        )
    return "\n".join(lines)
