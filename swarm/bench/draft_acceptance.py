"""What an early-exit draft (a model's own first N layers and output head) would accept as a speculative proposer.

For each N it writes the draft (`swarm split --draft-layers N`, all from one read of the model) and
measures, on the fixed prompts of swarm/bench/speculation.py (`reemit` and `ordinary`):

- acceptance, by teacher forcing: the full model's greedy continuation of each prompt is decoded once
  by the draft in one batch, and at each position the draft's argmax is compared with the full
  model's token. Under greedy verification a k-token proposal from position i is accepted up to the
  first disagreement, so the tokens it accepts are the run of agreeing positions from i, capped at
  k (averaged over the positions i with i + k <= the continuation's length, so every proposal is
  whole);
- costs: ms per decoded token of the draft and of the full model (one-row decodes of the same
  tokens after the same prompt), and the full model's ms for one decode of 1 + k rows, all with
  logits (the verify step): medians of single steps, the two models' steps interleaved position by
  position over --runs passes through the first ordinary prompt's continuation, so that both meet
  the same load from other processes;
- projections, with a_k the mean tokens a k-token proposal accepts, t_t and t_d the full model's
  and the draft's ms per token and V_k the verify step's ms:
  tokens per target pass = 1 + a_k;
  one PC (draft and target take turns on the same cores): (1 + a_k) t_t / (k t_d + V_k);
  draft on a PC of its own, a ceiling (its k steps hidden behind the verify, network free):
  (1 + a_k) t_t / max(k t_d, V_k).

    python -m swarm.bench.draft_acceptance --layers 2,4,6,9,12 --tokens 64
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swarm.bench.speculation import WORKLOADS
from swarm.engine.llama_adapter import LlamaContext, LlamaModel, TokenBatch
from swarm.gguf_files.default_model import default_model_path
from swarm.gguf_files.draft_files import write_early_exit_drafts

log = logging.getLogger(__name__)

PROPOSAL_LENGTHS = (1, 2, 4, 8)
CONTEXT = 1024  # the re-emission prompt (about 400 tokens) plus its continuation fits


class Decoder:
    """One model in one single-sequence llama.cpp context: every llama.cpp call this bench makes."""

    def __init__(self, path: Path, threads: int) -> None:
        self.model = LlamaModel(path)
        self.context = LlamaContext(self.model, 1, CONTEXT, CONTEXT, threads)
        self.batch = TokenBatch(CONTEXT)

    def _decode(self, tokens: Sequence[int], start: int, outputs_from: int) -> None:
        """Decodes tokens at positions start.. after dropping the cache from start; rows from outputs_from
        on make logits."""
        self.context.forget(0, start)
        self.batch.clear()
        for i, token in enumerate(tokens):
            self.batch.add(token, start + i, 0, i >= outputs_from)
        self.context.decode(self.batch)

    def _argmax(self, batch_index: int) -> int:
        return int(np.argmax(self.context.logits(batch_index)))

    def greedy(self, prompt: Sequence[int], tokens: int) -> list[int]:
        """The model's greedy continuation, one token per decode, ending early at an end-of-generation token."""
        self._decode(prompt, 0, len(prompt) - 1)
        out = [self._argmax(len(prompt) - 1)]
        while len(out) < tokens and not self.model.is_end_of_generation(out[-1]):
            self._decode([out[-1]], len(prompt) + len(out) - 1, 0)
            out.append(self._argmax(0))
        return out

    def predictions(self, prompt: Sequence[int], continuation: Sequence[int]) -> list[int]:
        """The model's argmax for each token of continuation, given the prompt and the continuation before it."""
        fed = [*prompt, *continuation[:-1]]
        self._decode(fed, 0, len(prompt) - 1)
        return [self._argmax(i) for i in range(len(prompt) - 1, len(fed))]

    def prefill(self, prompt: Sequence[int]) -> None:
        self._decode(prompt, 0, len(prompt) - 1)

    def step_ms(self, rows: Sequence[int], start: int) -> float:
        """ms of one decode of rows, all with logits, at positions start.. (the cache cut back to start first)."""
        self.context.forget(0, start)
        started = time.perf_counter()
        self._decode(rows, start, 0)
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.batch.close()
        self.context.close()
        self.model.close()


@dataclass(frozen=True)
class Continuation:
    """One prompt of a workload and the full model's greedy continuation of it."""

    prompt: list[int]
    continuation: list[int]


@dataclass(frozen=True)
class Acceptance:
    positions: int
    agreeing: int
    accepted: dict[int, float]  # proposal length k -> mean tokens such a proposal accepts

    @property
    def match(self) -> float:
        return self.agreeing / max(self.positions, 1)


def agreements(draft: Decoder, continuations: Sequence[Continuation]) -> list[list[bool]]:
    """For each continuation, whether the draft's argmax at each of its positions is the full model's token."""
    return [
        [a == b for a, b in zip(draft.predictions(c.prompt, c.continuation), c.continuation, strict=True)]
        for c in continuations
    ]


def acceptance(per_sequence: Sequence[Sequence[bool]]) -> Acceptance:
    """Argmax agreement and, for each proposal length k, the mean agreeing run from each position capped at k."""
    runs: dict[int, list[int]] = {k: [] for k in PROPOSAL_LENGTHS}
    for agree in per_sequence:
        run_from = [0] * (len(agree) + 1)  # the length of the agreeing run starting at each position
        for i in range(len(agree) - 1, -1, -1):
            run_from[i] = run_from[i + 1] + 1 if agree[i] else 0
        for k in PROPOSAL_LENGTHS:
            runs[k] += [min(run_from[i], k) for i in range(len(agree) - k + 1)]
    accepted = {k: statistics.fmean(values) if values else 0.0 for k, values in runs.items()}
    return Acceptance(sum(len(a) for a in per_sequence), sum(sum(a) for a in per_sequence), accepted)


@dataclass(frozen=True)
class Costs:
    draft_ms: float  # per decoded token
    target_ms: float
    verify_ms: dict[int, float]  # k -> the full model's ms for one decode of 1 + k rows

    def one_pc(self, accepted: float, k: int) -> float:
        return (1 + accepted) * self.target_ms / (k * self.draft_ms + self.verify_ms[k])

    def own_pc(self, accepted: float, k: int) -> float:
        return (1 + accepted) * self.target_ms / max(k * self.draft_ms, self.verify_ms[k])


def measure_costs(draft: Decoder, target: Decoder, timing: Continuation, runs: int) -> Costs:
    """Medians of single steps, interleaved so that both models meet the same load from other processes.

    At each position of the continuation (runs times over): a one-row step of the draft and of the full
    model, in turns which goes first, then one verify step of the full model (1 + k rows, k in turn).
    """
    draft_ms: list[float] = []
    target_ms: list[float] = []
    verify: dict[int, list[float]] = {k: [] for k in PROPOSAL_LENGTHS}
    draft.prefill(timing.prompt)
    target.prefill(timing.prompt)
    step = 0
    for _ in range(runs):
        for i, token in enumerate(timing.continuation):
            position = len(timing.prompt) + i
            pair = [(draft, draft_ms), (target, target_ms)]
            for decoder, times in pair if step % 2 == 0 else reversed(pair):
                times.append(decoder.step_ms([token], position))
            k = PROPOSAL_LENGTHS[step % len(PROPOSAL_LENGTHS)]
            # The rows' tokens do not change the cost; the next step cuts them off the cache again.
            verify[k].append(target.step_ms(timing.continuation[: 1 + k], position + 1))
            step += 1
    return Costs(
        statistics.median(draft_ms),
        statistics.median(target_ms),
        {k: statistics.median(values) for k, values in verify.items()},
    )


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm.bench.draft_acceptance", description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--layers", default="2,4,6,9,12", help="comma-separated draft layer counts N")
    parser.add_argument("--tokens", type=int, default=64, help="greedy tokens per prompt")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads of each model")
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="timed passes through the timing continuation per draft (medians of single steps)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("gguf").setLevel(logging.WARNING)  # its writer lists every file it writes
    try:
        layer_counts = [int(n) for n in args.layers.split(",")]
    except ValueError:
        parser.error(f"--layers takes comma-separated layer counts, not {args.layers!r}")
    if args.tokens < 9:
        parser.error("--tokens must be at least 9, for a whole 8-token proposal")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    model_path: Path = args.model or default_model_path(progress=False)

    with tempfile.TemporaryDirectory(prefix="swarm-drafts-") as folder:
        try:
            drafts = write_early_exit_drafts(model_path, layer_counts, Path(folder))
        except ValueError as exc:
            parser.error(f"--layers: {exc}")
        target = Decoder(model_path, args.threads)
        try:
            workloads: dict[str, list[Continuation]] = {}
            for name, prompts in WORKLOADS.items():
                log.info("%s: the full model's greedy continuations of %d prompts", name, len(prompts))
                tokenized = [target.model.tokenize(prompt) for prompt in prompts]
                workloads[name] = [Continuation(p, target.greedy(p, args.tokens)) for p in tokenized]
            results: list[tuple[int, dict[str, Acceptance], Costs]] = []
            for draft_file in drafts:
                log.info("draft of %d layers (%.1f MB)", draft_file.layers, draft_file.bytes / 1e6)
                draft = Decoder(draft_file.path, args.threads)
                try:
                    accepted = {name: acceptance(agreements(draft, cs)) for name, cs in workloads.items()}
                    costs = measure_costs(draft, target, workloads["ordinary"][0], args.runs)
                finally:
                    draft.close()
                draft_file.path.unlink()
                results.append((draft_file.layers, accepted, costs))
        finally:
            target.close()
    print_tables(results, model_path.name, args)
    return 0


def print_tables(
    results: Sequence[tuple[int, dict[str, Acceptance], Costs]], model: str, args: argparse.Namespace
) -> None:
    ks = PROPOSAL_LENGTHS
    print(f"{model}, {args.threads} threads, greedy continuations of {args.tokens} tokens, {args.runs} timed passes\n")
    rows = [
        [
            str(n),
            name,
            str(a.positions),
            f"{a.match:.1%}",
            *(f"{a.accepted[k]:.2f}" for k in ks),
        ]
        for n, accepted, _ in results
        for name, a in accepted.items()
    ]
    print(markdown(["N", "workload", "positions", "argmax = target", *(f"accepted k={k}" for k in ks)], rows))
    print()
    rows = [
        [
            str(n),
            f"{costs.draft_ms:.1f}",
            f"{costs.target_ms:.1f}",
            f"{costs.draft_ms / costs.target_ms:.2f}",
            *(f"{costs.verify_ms[k]:.1f}" for k in ks),
        ]
        for n, _, costs in results
    ]
    header = ["N", "draft ms/token", "full ms/token", "draft / full", *(f"verify 1+{k} rows ms" for k in ks)]
    print(markdown(header, rows))
    print()
    rows = [
        [
            str(n),
            name,
            *(f"{costs.one_pc(a.accepted[k], k):.2f}" for k in ks),
            *(f"{costs.own_pc(a.accepted[k], k):.2f}" for k in ks),
        ]
        for n, accepted, costs in results
        for name, a in accepted.items()
    ]
    header = ["N", "workload", *(f"one PC k={k}" for k in ks), *(f"own PC k={k} (ceiling)" for k in ks)]
    print(markdown(header, rows))


if __name__ == "__main__":
    raise SystemExit(main())
