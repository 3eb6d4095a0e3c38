"""Decode rate with log-probabilities (top_logprobs 20) against the same requests without, side by side in one run.

Both arms run the same greedy prompt through one BatchEngine (the worker's engine, no network) with S streams
at once; the arms alternate round by round, and a round's rate is the sum of each stream's own rate (tokens
after its first over its time from first token to finish). Prints each round, the medians and their ratio,
then the steadier figure: the engine thread's CPU time per token in Sampler.draw, with and without them.

    python -m swarm.bench.logprob_decode --streams 1 --rounds 3 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from swarm.bench.engine_rounds import run_requests
from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.llama_adapter import LlamaContext, LlamaModel, Sampler, TokenBatch
from swarm.gguf_files.default_model import default_model_path
from swarm.shared.types import GenerationRequest, SamplingParams

PROMPT = "1, 2, 3, 4, 5, 6,"  # counting keeps Gemma going for every token asked


def run_round(engine: BatchEngine, streams: int, sampling: SamplingParams, max_tokens: int, tag: str) -> float:
    requests = [GenerationRequest(f"{tag}-{i}", "bench", PROMPT, max_tokens, sampling) for i in range(streams)]
    return run_requests(engine, requests).rate


def draw_cpu_ms(model: LlamaModel, sampling: SamplingParams, draws: int = 200) -> float:
    """Median CPU time of one Sampler.draw on the logits of a real decode (greedy: drawing changes nothing)."""
    context = LlamaContext(model, 1, 256, 64, 1)
    batch = TokenBatch(64)
    sampler = Sampler(sampling, [], model)
    try:
        tokens = model.tokenize(PROMPT)
        for position, token in enumerate(tokens):
            last = batch.add(token, position, 0, position == len(tokens) - 1)
        context.decode(batch)
        times = []
        for _ in range(draws):
            started = time.thread_time()
            sampler.draw(context, last)
            times.append(time.thread_time() - started)
        return statistics.median(times) * 1000
    finally:
        sampler.close()
        batch.close()
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm.bench.logprob_decode", description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    model = LlamaModel(args.model or default_model_path(progress=False))
    engine = BatchEngine(model, EngineConfig(slots=max(args.streams, 1), context_per_slot=512, threads=args.threads))
    engine.start()
    arms = {"plain": SamplingParams(temperature=0.0), "logprobs": SamplingParams(0.0, logprobs=True, top_logprobs=20)}
    try:
        run_round(engine, 1, arms["plain"], 4, "warm")
        rates: dict[str, list[float]] = {arm: [] for arm in arms}
        for n in range(args.rounds):
            for arm, sampling in arms.items():
                rates[arm].append(run_round(engine, args.streams, sampling, args.max_tokens, f"{arm}{n}"))
                print(f"round {n} {arm:8}: {rates[arm][-1]:.1f} tok/s")
        plain, with_logprobs = (statistics.median(rates[arm]) for arm in arms)
        print(
            f"streams {args.streams}, threads {args.threads}: median plain {plain:.1f} tok/s, "
            f"logprobs (top 20) {with_logprobs:.1f} tok/s, ratio {with_logprobs / plain:.2f}"
        )
        costs = {arm: draw_cpu_ms(model, sampling) for arm, sampling in arms.items()}
        print(f"CPU per token in Sampler.draw: plain {costs['plain']:.2f} ms, logprobs {costs['logprobs']:.2f} ms")
    finally:
        engine.stop()
        model.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
