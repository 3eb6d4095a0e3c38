"""The logits of one batch row as llama.cpp's token-data array, for sampler chains applied by hand.

llama_sampler_sample builds this array in C and samples in one call; constrained sampling needs it
built here, so that the grammar can be applied to it before the chain. The buffers are reused each
step: a vocabulary of 262,144 tokens is 3 MB, filled by numpy, never by a Python loop.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from swarm.engine.llama_adapter.context import LlamaContext

# llama_token_data in numpy's terms: the same 12-byte layout the C samplers read and reorder.
TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class TokenCandidates:
    """Every token of the vocabulary with its logit at one batch row; chains applied to it pick one."""

    GREEDY_TOP = 1024  # the likeliest tokens a greedy choice under a grammar looks at first
    SAMPLED_TOP = 1024  # and a top-k, top-p or min-p draw
    # A top-p/min-p draw among the likeliest tokens stands when everything less likely weighs (at the
    # temperature) under this fraction of the allowed tokens among them; else the whole vocabulary is used.
    TAIL_TOLERANCE = 1e-3

    def __init__(self, vocab_size: int) -> None:
        if TOKEN_DATA.itemsize != ctypes.sizeof(llama_cpp.llama_token_data):
            raise RuntimeError("llama_token_data's layout is not the one this module was written for")
        self._vocab_size = vocab_size
        self._ids = np.arange(vocab_size, dtype=np.int32)
        self._data = np.zeros(vocab_size, dtype=TOKEN_DATA)
        self._array = _array_over(self._data)
        self._top = np.zeros(min(self.SAMPLED_TOP, vocab_size), dtype=TOKEN_DATA)
        self._top_array = _array_over(self._top)

    def best_allowed(self, context: LlamaContext, batch_index: int, grammar: Any) -> int | None:
        """Greedy under a grammar without a pass over the whole vocabulary: the highest-logit token among the
        GREEDY_TOP likeliest that the grammar allows, or None when it allows none of them."""
        logits = self._logits(context, batch_index)
        allowed = self._likeliest_allowed(logits, self.GREEDY_TOP, grammar, ordered=True)
        return int(self._top["id"][np.argmax(allowed)]) if allowed.any() else None

    def sample_among_likeliest(
        self, context: LlamaContext, batch_index: int, grammar: Any, chain: Any, temperature: float, enough_allowed: int
    ) -> int | None:
        """The chain's draw among the SAMPLED_TOP likeliest tokens the grammar allows, or None where only the
        whole vocabulary gives the chain's answer: for a top-k chain (enough_allowed = k), when fewer than k
        of them are allowed; else when the tokens left out could weigh over TAIL_TOLERANCE of those allowed."""
        logits = self._logits(context, batch_index)
        allowed = self._likeliest_allowed(logits, self.SAMPLED_TOP, grammar, ordered=False)
        count = int(allowed.sum())
        if count == 0 or (enough_allowed > 0 and count < enough_allowed):
            return None
        if enough_allowed == 0:
            weights = np.exp((logits - logits.max()) / temperature)
            likeliest = weights[self._top["id"][: len(allowed)]]
            if weights.sum() - likeliest.sum() > self.TAIL_TOLERANCE * likeliest[allowed].sum():
                return None
        llama_cpp.llama_sampler_apply(chain, ctypes.byref(self._top_array))
        if not 0 <= self._top_array.selected < self._top_array.size:
            raise RuntimeError("the sampler chain selected no token")
        return int(self._top_array.data[self._top_array.selected].id)

    def draws(
        self, context: LlamaContext, batch_index: int, temperature: float, rng: np.random.Generator, count: int
    ) -> list[int]:
        """`count` independent draws from the row's softmax at `temperature` (what a temperature-only chain draws)."""
        scaled = self._logits(context, batch_index).astype(np.float64) / temperature
        cumulative = np.cumsum(np.exp(scaled - scaled.max()))
        picks = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
        return [int(token) for token in np.minimum(picks, self._vocab_size - 1)]

    def _likeliest_allowed(
        self, logits: npt.NDArray[np.float32], count: int, grammar: Any, ordered: bool
    ) -> npt.NDArray[np.bool_]:
        """Fills the small array with the `count` highest logits (in descending order if `ordered`), applies
        the grammar to it, and returns which of them it allows."""
        count = min(count, self._vocab_size)
        top = np.argpartition(logits, -count)[-count:]
        if ordered:
            top = top[np.argsort(-logits[top], kind="stable")]
        self._top["id"][:count] = top
        self._top["logit"][:count] = logits[top]
        self._top["p"][:count] = 0.0
        _reset(self._top_array, self._top, count)
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(self._top_array))
        allowed: npt.NDArray[np.bool_] = np.isfinite(self._top["logit"][:count])
        return allowed

    def choose(self, context: LlamaContext, batch_index: int, *samplers: Any) -> int:
        """Applies the samplers in order to the row's fresh logits (the last of them selects); no sampler accepts."""
        # Samplers reorder and shrink the array in place: restore every field and the size each time.
        self._data["id"] = self._ids
        self._data["logit"] = self._logits(context, batch_index)
        self._data["p"] = 0.0
        _reset(self._array, self._data, self._vocab_size)
        for sampler in samplers:
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(self._array))
        if not 0 <= self._array.selected < self._array.size:
            raise RuntimeError("the sampler chain selected no token")
        return int(self._array.data[self._array.selected].id)

    def _logits(self, context: LlamaContext, batch_index: int) -> npt.NDArray[np.float32]:
        """The row's logits in llama.cpp's own buffer (valid until the next decode)."""
        pointer = llama_cpp.llama_get_logits_ith(context.handle, batch_index)
        return np.ctypeslib.as_array(pointer, shape=(self._vocab_size,))


def _reset(array: llama_cpp.llama_token_data_array, data: npt.NDArray[np.void], size: int) -> None:
    """Points the array at its buffer again, unsorted and unselected: samplers may have moved it to their own."""
    array.data = data.ctypes.data_as(llama_cpp.llama_token_data_p)  # type: ignore[assignment]  # a pointer in C
    array.size, array.selected, array.sorted = size, -1, False


def _array_over(data: npt.NDArray[np.void]) -> llama_cpp.llama_token_data_array:
    """llama.cpp's view of a TOKEN_DATA buffer (the buffer must outlive it)."""
    return llama_cpp.llama_token_data_array(
        data=data.ctypes.data_as(llama_cpp.llama_token_data_p), size=len(data), selected=-1, sorted=False
    )
