"""`python -m swarm.bench.lan.pipeline_bench`: a 2-stage pipeline on two emulated PCs against the whole model on one.

Both arms run in one swarm on one EmulatedLan: the whole model on PC 0 (served as model `whole`),
and `swarm split --stages 2` files with stage 0 on PC 0 and stage 1 on PC 1 (served as `pipeline`);
Redis and the coordinator on PC 0, the client (this process) outside the LAN. The arms take turns,
in alternating order, so drift on a shared machine hits both alike; each figure is a median.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from swarm.bench.engine_vs_bare import fresh_prompts
from swarm.bench.lan.emulated_lan import EmulatedLan, add_lan_flags, lan_from_args
from swarm.bench.swarm_load import measure_swarm
from swarm.client import AsyncSwarmClient
from swarm.gguf_files.default_model import cache_dir, resolve_model
from swarm.gguf_files.stage_files import cached_split
from swarm.launch.local_swarm import interrupt_on_stop_signals
from swarm.shared.types import Finished, TextPiece

log = logging.getLogger(__name__)

ARMS = ("whole", "pipeline")
SENTENCE = "Note {i}: the {w} tower by the river keeps its lamp lit through the night for passing boats."
WORDS = ["old", "stone", "white", "narrow", "quiet", "tall", "red", "lonely", "grey", "famous"]


@dataclass(frozen=True)
class FirstToken:
    seconds: float
    prompt_tokens: int


def long_prompt(model: Path, run: int, tokens: int) -> str:
    """A prompt of about `tokens` tokens that no earlier run began with (no prefix cache helps it)."""
    vocab = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    try:
        sentences = [f"Run {run}."]
        while len(vocab.tokenize(" ".join(sentences).encode(), add_bos=True)) < tokens:
            i = len(sentences)
            sentences.append(SENTENCE.format(i=i, w=WORDS[(i * 7 + run) % len(WORDS)]))
        return " ".join(sentences)
    finally:
        vocab.close()


async def first_token(address: str, model: str, prompt: str) -> FirstToken:
    async with AsyncSwarmClient(address, retries=0) as client:
        await client.status()  # connected first: the time is the swarm's, not a handshake's
        sent = time.perf_counter()
        first = 0.0
        prompt_tokens = 0
        async for event in client.stream(prompt, model=model, max_tokens=2, temperature=0.0):
            if isinstance(event, TextPiece) and not first:
                first = time.perf_counter() - sent
            elif isinstance(event, Finished):
                prompt_tokens = event.prompt_tokens
    return FirstToken(first, prompt_tokens)


def start_arms(lan: EmulatedLan, scratch: Path, model: Path, args: argparse.Namespace) -> None:
    """The coordinator, the whole model on PC 0 and the two stages on PCs 0 and 1; returns once all are up."""
    lan.start_coordinator(scratch)
    worker_args = ("--threads", str(args.threads), "--slots", str(args.slots), "--context", str(args.context))
    lan.start_whole_model(model, *worker_args, "--model-name", ARMS[0], pc=0, name="whole")
    stage_files = cached_split(model, 2, cache_dir() / "stages")
    lan.start_pipeline(stage_files, *worker_args, "--model-name", ARMS[1], pcs=[0, 1])
    lan.wait_for_workers(3, "the whole model and both stages")


def in_turns(repeat: int) -> tuple[str, ...]:
    return ARMS if repeat % 2 == 0 else ARMS[::-1]


def measure(lan: EmulatedLan, model: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """figure -> arm -> one value per repeat."""
    address = lan.coordinator
    for arm in ARMS:  # warm caches, channels and links
        asyncio.run(measure_swarm(address, fresh_prompts(0, 2), 8, model=arm))
    figures: dict[str, dict[str, list[float]]] = {}
    runs = iter(range(1, 1_000_000))
    for streams in args.streams:
        figure = figures.setdefault(f"{streams} stream{'s' if streams > 1 else ''}: decode tok/s", {})
        for repeat in range(args.repeats):
            prompts = fresh_prompts(next(runs), streams)
            for arm in in_turns(repeat):
                run = asyncio.run(measure_swarm(address, prompts, args.max_tokens, model=arm))
                figure.setdefault(arm, []).append(run.decode_tokens_per_s)
                time.sleep(0.3)
        log.info("measured %d streams", streams)
    if args.long_prompt:
        lengths = []
        first_ms: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            prompt = long_prompt(model, next(runs), args.long_prompt)
            for arm in in_turns(repeat):
                got = asyncio.run(first_token(address, arm, prompt))
                first_ms.setdefault(arm, []).append(got.seconds * 1e3)
                lengths.append(got.prompt_tokens)
                time.sleep(0.3)
        figures[f"time to first token, {statistics.median(lengths):.0f}-token prompt (ms)"] = first_ms
    return figures


def report(figures: dict[str, dict[str, list[float]]], model: Path, lan: EmulatedLan, args: argparse.Namespace) -> str:
    pcs = ", ".join(f"PC {i}: core {','.join(map(str, sorted(cores)))}" for i, cores in enumerate(lan.pcs))
    lines = [
        f"model {model.name}; {pcs}; links {args.delay_ms:g} ms one-way, {args.gbps:g} Gbit/s (user-space relays); "
        f"{args.threads} thread(s) and {args.slots} slots per worker; {args.max_tokens} tokens per stream, greedy; "
        f"median of {args.repeats}, arms alternating",
        "",
        "| figure | whole model, PC 0 | 2 stages, PCs 0+1 | pipeline / whole | each run (pipeline / whole) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, arms in figures.items():
        whole, pipeline = statistics.median(arms[ARMS[0]]), statistics.median(arms[ARMS[1]])
        each = ", ".join(f"{p / w:.2f}" for w, p in zip(arms[ARMS[0]], arms[ARMS[1]], strict=True))
        lines.append(f"| {name} | {whole:.1f} | {pipeline:.1f} | {pipeline / whole:.2f}x | {each} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_lan_flags(parser)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--context", type=int, default=2048, help="tokens per slot (room for the long prompt)")
    parser.add_argument("--streams", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--long-prompt", type=int, default=1500, help="tokens of the first-token prompt; 0: skip")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    interrupt_on_stop_signals()
    with tempfile.TemporaryDirectory(prefix="swarm-lan-") as scratch:
        lan = lan_from_args(args, Path(scratch))
        try:
            start_arms(lan, Path(scratch), model, args)
            link_cpu, started = lan.link_cpu_seconds(), time.monotonic()
            figures = measure(lan, model, args)
            link_cpu, wall = lan.link_cpu_seconds() - link_cpu, time.monotonic() - started
        finally:
            lan.stop()
    table = report(figures, model, lan, args)
    share = f"{link_cpu / wall:.1%} of a core"
    table += f"\n\nlink relays used {link_cpu:.1f} s of CPU in {wall:.0f} s of measuring ({share})"
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
