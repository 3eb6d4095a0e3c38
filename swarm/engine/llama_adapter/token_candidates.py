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

    TOP = 64  # the likeliest tokens a greedy choice under a grammar looks at before the whole vocabulary

    def __init__(self, vocab_size: int) -> None:
        if TOKEN_DATA.itemsize != ctypes.sizeof(llama_cpp.llama_token_data):
            raise RuntimeError("llama_token_data's layout is not the one this module was written for")
        self._vocab_size = vocab_size
        self._ids = np.arange(vocab_size, dtype=np.int32)
        self._data = np.zeros(vocab_size, dtype=TOKEN_DATA)
        self._array = llama_cpp.llama_token_data_array(
            data=self._data.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=vocab_size,
            selected=-1,
            sorted=False,
        )
        self._top = np.zeros(self.TOP, dtype=TOKEN_DATA)
        self._top_array = llama_cpp.llama_token_data_array(
            data=self._top.ctypes.data_as(llama_cpp.llama_token_data_p), size=self.TOP, selected=-1, sorted=False
        )

    def best_allowed(self, context: LlamaContext, batch_index: int, grammar: Any) -> int | None:
        """Greedy under a grammar without a pass over the whole vocabulary: the highest-logit token among the
        TOP most likely that the grammar allows, or None when it allows none of them."""
        logits = self._logits(context, batch_index)
        top = np.argpartition(logits, -self.TOP)[-self.TOP :]
        order = top[np.argsort(-logits[top], kind="stable")]
        self._top["id"] = order
        self._top["logit"] = logits[order]
        self._top["p"] = 0.0
        self._top_array.size, self._top_array.selected, self._top_array.sorted = self.TOP, -1, False
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(self._top_array))
        allowed = np.isfinite(self._top["logit"])
        return int(self._top["id"][np.argmax(allowed)]) if allowed.any() else None

    def choose(self, context: LlamaContext, batch_index: int, *samplers: Any) -> int:
        """Applies the samplers in order to the row's fresh logits (the last of them selects); no sampler accepts."""
        # Samplers reorder and shrink the array in place: restore every field and the size each time.
        self._data["id"] = self._ids
        self._data["logit"] = self._logits(context, batch_index)
        self._data["p"] = 0.0
        self._array.size = self._vocab_size
        self._array.selected = -1
        self._array.sorted = False
        for sampler in samplers:
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(self._array))
        if not 0 <= self._array.selected < self._array.size:
            raise RuntimeError("the sampler chain selected no token")
        return int(self._data["id"][self._array.selected])

    def _logits(self, context: LlamaContext, batch_index: int) -> npt.NDArray[np.float32]:
        """The row's logits in llama.cpp's own buffer (valid until the next decode)."""
        pointer = llama_cpp.llama_get_logits_ith(context.handle, batch_index)
        return np.ctypeslib.as_array(pointer, shape=(self._vocab_size,))
