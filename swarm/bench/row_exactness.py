"""`python -m swarm.bench.row_exactness`: how far one step of k rows of a sequence moves logits from k steps of one.

Speculation verifies a proposal of k-1 tokens as k rows of one sequence in one step, and keeps
each token the sampler draws from those rows. That gives exactly the tokens of one-row steps only
where llama.cpp computes those rows' logits exactly as it does one row at a time. This prints, for
each row count, the largest absolute difference per row (row 0 is the sequence's own next token),
on the model and threads given, after the bench's re-emission prompt.
"""

from __future__ import annotations

import argparse

import numpy as np

from swarm.bench.speculation import REEMIT_PROMPT
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.llama_adapter.batches import TokenBatch
from swarm.engine.llama_adapter.context import LlamaContext
from swarm.gguf_files.default_model import resolve_model

# What the model decodes after the prompt, one row at a time and then as one step (a proposal it verifies).
CONTINUATION = " def total(items):\n    return sum(item.price * item.quantity for item in items)"


def differences(model: LlamaModel, threads: int, row_counts: list[int]) -> dict[int, list[float]]:
    """For each row count k, the largest |logit difference| of each of the k rows against one-row steps."""
    prompt = model.tokenize(REEMIT_PROMPT)
    rows = model.tokenize(CONTINUATION)[: max(row_counts)]
    size = len(prompt) + len(rows)
    context = LlamaContext(model, slots=2, context_per_slot=size + 16, batch_size=size, threads=threads)
    batch = TokenBatch(size)
    try:
        for sequence in (0, 1):  # 0 decodes one row per step, 1 takes each row count in one step
            batch.clear()
            for i, token in enumerate(prompt):
                batch.add(token, i, sequence, i == len(prompt) - 1)
            context.decode(batch)
        alone = []
        for j, token in enumerate(rows):
            batch.clear()
            batch.add(token, len(prompt) + j, 0, True)
            context.decode(batch)
            alone.append(context.logits(0).copy())
        found: dict[int, list[float]] = {}
        for k in row_counts:
            context.forget(1, len(prompt))
            batch.clear()
            for j, token in enumerate(rows[:k]):
                batch.add(token, len(prompt) + j, 1, True)
            context.decode(batch)
            found[k] = [float(np.abs(alone[j] - context.logits(j)).max()) for j in range(k)]
        return found
    finally:
        batch.close()
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="default", help="GGUF path or 'default' (Gemma 3 270M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default="2,3,4,5,8,9", help="row counts to try, comma-separated")
    parser.add_argument(
        "--repack", choices=("on", "off"), default="on", help="llama.cpp's weight repacking (on: its default)"
    )
    args = parser.parse_args(argv)
    row_counts = sorted({int(k) for k in args.rows.split(",")})
    if not row_counts or row_counts[0] < 1:
        parser.error("--rows: row counts of at least 1, e.g. 2,3,4,5,9")
    path = resolve_model(args.model)
    model = LlamaModel(path, repack=args.repack == "on")
    try:
        found = differences(model, args.threads, row_counts)
    finally:
        model.close()
    print(
        f"model {path.name}, {args.threads} threads, repacking {args.repack}; "
        "max |logit difference| against one-row steps, per row"
    )
    print("| rows in the step | each row's difference | exact |")
    print("| ---: | --- | --- |")
    for k, per_row in found.items():
        print(f"| {k} | {', '.join(f'{d:.4g}' for d in per_row)} | {'yes' if max(per_row) == 0 else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
