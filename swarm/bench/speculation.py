"""Speculative decoding off against on, side by side in one run: a re-emission workload and ordinary prompts.

One BatchEngine (the worker's engine, no network) serves both arms; a request's `speculate` field
picks the arm, and the arms alternate round by round. A round sends S streams at once; its rate is
the sum of its streams' own rates (tokens after the first over the time from first token to
finish). Prints each round, the medians, their ratio, the acceptance of proposals, and how many
greedy tokens the two arms share (llama.cpp rounds a step with proposal rows differently from a
one-row step, so near ties on a real model may go the other way).

The re-emission workload is fixed: a prompt holding a short Python module that the answer repeats
with one name changed. Ordinary prompts are `swarm bench`'s own, which do not repeat.

    python -m swarm.bench.speculation --streams 1,8 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from swarm.bench.engine_rounds import run_requests
from swarm.bench.engine_vs_bare import PROMPTS as ORDINARY_PROMPTS
from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.llama_adapter import LlamaModel
from swarm.gguf_files.default_model import default_model_path
from swarm.shared.types import GenerationRequest, SamplingParams

CODE = """import json
from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: float
    quantity: int


def load_items(path):
    with open(path) as f:
        rows = json.load(f)
    return [Item(row["name"], row["price"], row["quantity"]) for row in rows]


def total(items):
    result = 0.0
    for item in items:
        result += item.price * item.quantity
    return result


def cheapest(items):
    return min(items, key=lambda item: item.price)


if __name__ == "__main__":
    items = load_items("items.json")
    print(total(items))
    print(cheapest(items).name)
"""
REEMIT_PROMPT = (
    "<start_of_turn>user\nRename the function `total` to `total_price` everywhere in this code and print the "
    f"whole code again, unchanged otherwise:\n\n```python\n{CODE}```<end_of_turn>\n<start_of_turn>model\n"
)
WORKLOADS = {"reemit": [REEMIT_PROMPT], "ordinary": ORDINARY_PROMPTS}


@dataclass(frozen=True)
class Round:
    rate: float  # the sum of each stream's own decode rate
    cpu_per_token: float  # this process's CPU seconds per token generated: steadier than rates on shared cores
    tokens: list[list[int]]  # each stream's tokens
    proposed: int
    accepted: int


def run_round(
    engine: BatchEngine, prompts: list[str], streams: int, speculate: bool, max_tokens: int, tag: str
) -> Round:
    cpu_started = time.process_time()
    requests = [
        GenerationRequest(
            f"{tag}-{i}",
            "bench",
            prompts[i % len(prompts)],
            max_tokens,
            SamplingParams(temperature=0.0),
            speculate=speculate,
        )
        for i in range(streams)
    ]
    measured = run_requests(engine, requests, timeout_s=900)
    tokens = [list(stream) for stream in measured.stream_tokens]
    cpu_per_token = (time.process_time() - cpu_started) / max(sum(len(t) for t in tokens), 1)
    proposed = sum(f.proposed_tokens for f in measured.finishes)
    accepted = sum(f.accepted_tokens for f in measured.finishes)
    return Round(measured.rate, cpu_per_token, tokens, proposed, accepted)


def agreement(plain: list[list[int]], fast: list[list[int]]) -> tuple[int, int]:
    """(tokens where the arms agree, tokens compared): position by position over each stream's output."""
    same = total = 0
    for a, b in zip(plain, fast, strict=True):
        total += max(len(a), len(b))
        same += sum(1 for x, y in zip(a, b, strict=False) if x == y)
    return same, total


def compare(engine: BatchEngine, workload: str, streams: int, rounds: int, max_tokens: int) -> None:
    prompts = WORKLOADS[workload]
    arms: dict[bool, list[Round]] = {False: [], True: []}
    for n in range(rounds):
        for speculate in (False, True) if n % 2 == 0 else (True, False):
            tag = f"{workload}{streams}-{n}-{speculate}"
            measured = run_round(engine, prompts, streams, speculate, max_tokens, tag)
            arms[speculate].append(measured)
            name = "on " if speculate else "off"
            acceptance = f", accepted {measured.accepted}/{measured.proposed}" if speculate else ""
            cpu = f"{measured.cpu_per_token * 1000:.1f} CPU ms/token"
            print(f"  {workload} x{streams} round {n} {name}: {measured.rate:.1f} tok/s, {cpu}{acceptance}", flush=True)
    off = statistics.median(r.rate for r in arms[False])
    on = statistics.median(r.rate for r in arms[True])
    cpu_off = statistics.median(r.cpu_per_token for r in arms[False])
    cpu_on = statistics.median(r.cpu_per_token for r in arms[True])
    same, total = agreement(arms[False][0].tokens, arms[True][0].tokens)
    proposed = sum(r.proposed for r in arms[True])
    accepted = sum(r.accepted for r in arms[True])
    print(
        f"{workload:8} streams {streams}: median off {off:.1f} tok/s, on {on:.1f} tok/s, ratio {on / off:.2f} "
        f"(CPU per token: ratio {cpu_off / cpu_on:.2f}); "
        f"accepted {accepted}/{proposed} proposed; greedy tokens identical {same}/{total} ({same / max(total, 1):.1%})",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm.bench.speculation", description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--streams", default="1,8", help="comma-separated stream counts")
    parser.add_argument("--workloads", default="reemit,ordinary", help=f"comma-separated, of {sorted(WORKLOADS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    counts = [int(s) for s in args.streams.split(",")]
    model = LlamaModel(args.model or default_model_path(progress=False))
    config = EngineConfig(slots=max(counts), context_per_slot=1024, threads=args.threads, speculate=True)
    engine = BatchEngine(model, config)
    engine.start()
    try:
        run_round(engine, ["Hello"], 1, False, 4, "warm")
        print(f"threads {args.threads}, greedy, max_tokens {args.max_tokens}, rounds {args.rounds} (arms alternate)")
        for workload in args.workloads.split(","):
            for streams in counts:
                compare(engine, workload, streams, args.rounds, args.max_tokens)
    finally:
        engine.stop()
        model.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
