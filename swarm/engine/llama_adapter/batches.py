"""Reusable llama_batch buffers: tokens, or a later pipeline stage's hidden states, of several sequences."""

from __future__ import annotations

from typing import Any, Literal

import llama_cpp
import numpy as np
import numpy.typing as npt

from swarm.shared.stage_messages import HiddenStates


class TokenBatch:
    """A reusable llama_batch: tokens of several sequences decoded in one llama_decode."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        self.size = 0
        self.outputs = 0  # tokens marked wants_logits

    def clear(self) -> None:
        self.size = 0
        self.outputs = 0

    def add(self, token: int, position: int, seq_id: int, wants_logits: bool) -> int:
        """Appends a token; returns its index in the batch (where its logits will be)."""
        i = self.size
        if i >= self.capacity:
            raise IndexError("batch is full")
        b = self._batch
        b.token[i] = token
        b.pos[i] = position
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq_id
        b.logits[i] = wants_logits
        self.size = i + 1
        self.outputs += bool(wants_logits)
        return i

    @property
    def native(self) -> Any:
        self._batch.n_tokens = self.size
        return self._batch

    def close(self) -> None:
        llama_cpp.llama_batch_free(self._batch)


class EmbeddingBatch:
    """A reusable llama_batch of hidden states (a later pipeline stage's input), several sequences per decode."""

    def __init__(self, capacity: int, n_embd: int) -> None:
        self.capacity = capacity
        self.n_embd = n_embd
        self._batch = llama_cpp.llama_batch_init(capacity, n_embd, 1)
        self._embd: HiddenStates = np.ctypeslib.as_array(self._batch.embd, shape=(capacity, n_embd))
        self.size = 0
        self.outputs = 0

    def clear(self) -> None:
        self.size = 0
        self.outputs = 0

    def add_rows(
        self,
        rows: npt.ArrayLike,
        first_position: int,
        seq_id: int,
        outputs: Literal["all", "last", "none"] | int = "all",
    ) -> int:
        """Appends consecutive hidden states of one sequence, shape (n, n_embd) or (n_embd,); returns the
        batch index of the first. A non-final stage needs outputs="all"; a final one "last" for the next token,
        or a number: logits for that many last rows (a proposal to verify)."""
        block = np.asarray(rows, dtype=np.float32).reshape(-1, self.n_embd)
        n, first = len(block), self.size
        with_logits = {"all": n, "last": min(n, 1), "none": 0}[outputs] if isinstance(outputs, str) else outputs
        if not 0 <= with_logits <= n:
            raise ValueError(f"{with_logits} rows with logits asked of {n}")
        if first + n > self.capacity:
            raise IndexError(f"batch holds {self.capacity} rows; {first} used, {n} more asked")
        self._embd[first : first + n] = block
        b = self._batch
        for k in range(n):
            i = first + k
            b.pos[i] = first_position + k
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq_id
            b.logits[i] = k >= n - with_logits
        self.size = first + n
        self.outputs += with_logits
        return first

    @property
    def native(self) -> Any:
        self._batch.n_tokens = self.size
        return self._batch

    def close(self) -> None:
        if self._batch is not None:
            self._embd = np.empty((0, self.n_embd), dtype=np.float32)  # the view dies with the buffer
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
