"""`python -m swarm.bench.stage_rows`: one decode step of each stage of a split model, at 4 and 8 rows.

Shows how even a split's stages are, and what halving a step's batch (two groups in flight
instead of one step of all streams) costs each stage. Run it pinned to one core
(`taskset -c 1`); every row is one session's next token, and the last stage samples each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.stage_executor import StageExecutor
from swarm.gguf_files.default_model import cache_dir, resolve_model
from swarm.gguf_files.stage_files import cached_split
from swarm.shared.stage_messages import StageWork
from swarm.shared.types import SamplingParams

SESSIONS = 8


def step_times_ms(stage_file: Path, first: bool, last: bool, rounds: int, steps: int) -> dict[int, list[float]]:
    """For 4 and 8 rows, alternating: the median step time of each round."""
    model = LlamaModel(stage_file)
    executor = StageExecutor(model, first=first, last=last, slots=SESSIONS, context_per_slot=512, threads=1)
    rng = np.random.default_rng(0)
    position = [0] * SESSIONS
    times: dict[int, list[float]] = {4: [], 8: []}
    try:
        for session in range(SESSIONS):
            executor.open(session, SamplingParams(temperature=0.0), 0, [1])
        for _ in range(rounds):
            for rows in (4, 8):
                took = []
                for _ in range(steps):
                    work = [
                        StageWork(s, position[s], tokens=(100 + s,), sample=True)
                        if first
                        else StageWork(s, position[s], hidden=_hidden_row(rng, model.n_embd), sample=True)
                        for s in range(rows)
                    ]
                    for s in range(rows):
                        position[s] += 1
                    started = time.perf_counter()
                    executor.step(work)
                    took.append(time.perf_counter() - started)
                times[rows].append(statistics.median(took) * 1000)
    finally:
        executor.close_all()
    return times


def _hidden_row(rng: np.random.Generator, n_embd: int) -> np.ndarray:
    return rng.standard_normal((1, n_embd)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="default", help="GGUF path or 'default' (Gemma 3 270M)")
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="steps per round; the round's figure is their median")
    args = parser.parse_args(argv)
    files = cached_split(resolve_model(args.model), args.stages, cache_dir() / "stages")
    print("| stage | 4 rows (ms) | 8 rows (ms) |\n| --- | ---: | ---: |")
    for index, stage_file in enumerate(files):
        times = step_times_ms(stage_file, index == 0, index == len(files) - 1, args.rounds, args.steps)
        four, eight = (", ".join(f"{t:.1f}" for t in times[rows]) for rows in (4, 8))
        print(f"| {index + 1}/{len(files)} | {four} | {eight} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
