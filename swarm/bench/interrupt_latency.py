"""`python -m swarm.bench.interrupt_latency`: how soon a decode step stops once interrupted, by when it is.

A tenant's first request cuts the step under way short (StepInterrupt), but llama.cpp checks the flag
only between the nodes of the step's graph, so a long node runs to its end. This decodes a step of
--rows decode rows (as a flood's sequences would be) and raises the flag from a timer at delays across
the step, printing, per delay, the median of --tries of how long the decode ran on after the flag
(medians of whole steps first).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from swarm.engine.llama_adapter import LlamaContext, LlamaModel, TokenBatch
from swarm.gguf_files.default_model import resolve_model

PROMPT = "The history of the printing press begins in China with woodblock printing and later movable type"


def _step(batch: TokenBatch, rows: int, position: int, token: int) -> None:
    """One decode row per sequence at `position`."""
    batch.clear()
    for sequence in range(rows):
        batch.add(token, position, sequence, True)


def latencies(
    model: LlamaModel, threads: int, rows: int, delays_ms: list[float], tries: int
) -> tuple[float, dict[float, float]]:
    """A whole step's median seconds, and per delay the median seconds a decode ran on after the flag."""
    prompt = model.tokenize(PROMPT)
    context = LlamaContext(model, slots=rows, context_per_slot=len(prompt) + 16, batch_size=512, threads=threads)
    batch = TokenBatch(512)
    try:
        batch.clear()
        for sequence in range(rows):
            for i, token in enumerate(prompt):
                batch.add(token, i, sequence, i == len(prompt) - 1)
        context.decode(batch)
        position = len(prompt)
        whole = []
        for _ in range(tries):
            _step(batch, rows, position, prompt[0])
            started = time.perf_counter()
            context.decode(batch)
            whole.append(time.perf_counter() - started)
            for sequence in range(rows):
                context.forget(sequence, position)
        ran_on: dict[float, float] = {}
        for delay_ms in delays_ms:
            after = []
            for _ in range(tries):
                _step(batch, rows, position, prompt[0])
                timer = threading.Timer(delay_ms / 1000, context.interrupt)
                started = time.perf_counter()
                timer.start()
                stopped = not context.decode(batch, interruptible=True)
                ended = time.perf_counter()
                timer.join()
                if stopped:
                    after.append(max(0.0, ended - started - delay_ms / 1000))
                else:  # the step ended before the flag: undo it, and lower the flag the timer raised since
                    for sequence in range(rows):
                        context.forget(sequence, position)
                    context.clear_interrupt()
            if after:
                ran_on[delay_ms] = statistics.median(after)
        return statistics.median(whole), ran_on
    finally:
        batch.close()
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="default", help="GGUF path or 'default' (Gemma 3 270M)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=3, help="decode rows in the step (sequences)")
    parser.add_argument("--tries", type=int, default=3, help="per delay; medians are over these")
    parser.add_argument("--points", type=int, default=12, help="delays, evenly across one step")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.tries < 1 or args.points < 1:
        parser.error("--rows, --tries and --points must be at least 1")
    path = resolve_model(args.model)
    model = LlamaModel(path)
    try:
        whole, _ = latencies(model, args.threads, args.rows, [], args.tries)
        delays = [whole * 1000 * i / args.points for i in range(args.points)]
        whole, ran_on = latencies(model, args.threads, args.rows, delays, args.tries)
    finally:
        model.close()
    print(f"model {path.name}, {args.threads} threads, {args.rows} decode rows: a whole step {whole * 1000:.1f} ms")
    print("| flag raised at ms | the decode ran on ms (median) |")
    print("| ---: | ---: |")
    for delay_ms, seconds in ran_on.items():
        print(f"| {delay_ms:.1f} | {seconds * 1000:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
