"""Checks greedy output against llama.cpp, exact where it can be and within float32 rounding where it cannot.

llama.cpp rounds a batched decode differently from the same rows decoded alone (by a few float32
ulps, and differently on different CPUs), and a random-weight model has near-tied logits, so a
sequence decoded beside others may take the other side of a near tie and then continue from there.
A mix-up (another session's cache or rows) is different in kind: it picks tokens that lose by
whole units. So instead of comparing with one reference run, `GreedyReference.check` feeds the
swarm's own tokens to llama.cpp (teacher forcing) and asks, at every position, that the token the
swarm chose is the reference's best, or within `tolerance` of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

# A batched decode's float32 rounding is only the start: llama.cpp keeps K and V in float16, so
# a few ulps can flip a float16 rounding (about 5e-4 relative), and over a hundred positions a
# synthetic model's logits (tens of units) then move by up to about 0.05 (measured under the chaos
# test's load). A mix-up loses by whole units (median 17, and 20 of 20 mixed continuations had a
# token losing by more than 0.5). A token losing by more than this was not a near tie.
DEFAULT_TOLERANCE = 0.5


class GreedyReference:
    """llama-cpp-python on one model, scoring every position of prompt + output in one pass."""

    def __init__(self, model: Path, n_ctx: int = 512) -> None:
        self._llm = llama_cpp.Llama(str(model), n_ctx=n_ctx, n_threads=1, logits_all=True, verbose=False)

    def close(self) -> None:
        self._llm.close()

    def tokenize(self, prompt: str) -> list[int]:
        return list(self._llm.tokenize(prompt.encode(), add_bos=True, special=True))

    def margins(self, prompt: str, output: Sequence[int]) -> list[float]:
        """For each output token: how far its logit falls short of the best one at that position (0 = the best)."""
        prompt_ids = self.tokenize(prompt)
        self._llm.reset()
        self._llm.eval([*prompt_ids, *output])
        scores = np.asarray(self._llm.scores[len(prompt_ids) - 1 : len(prompt_ids) - 1 + len(output)])
        return [float(row.max() - row[token]) for row, token in zip(scores, output, strict=True)]

    def check(self, prompt: str, output: Sequence[int], tolerance: float = DEFAULT_TOLERANCE) -> None:
        """Fails unless every output token is greedy's choice, up to a near tie within tolerance."""
        if not output:
            raise AssertionError(f"no output for {prompt!r}")
        for position, margin in enumerate(self.margins(prompt, output)):
            if margin > tolerance:
                raise AssertionError(
                    f"{prompt!r}: output token {position} ({output[position]}) loses to the greedy choice by "
                    f"{margin:.4g} > {tolerance}: not greedy decoding of this prompt (a mix-up?)"
                )
