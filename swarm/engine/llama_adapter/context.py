"""A llama.cpp context: the KV cache of every slot, and the decode call that advances them together."""

from __future__ import annotations

from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from swarm.engine.llama_adapter.batches import EmbeddingBatch, TokenBatch
from swarm.engine.llama_adapter.hidden_capture import HiddenStateCapture
from swarm.engine.llama_adapter.model import LlamaModel, ModelLoadError
from swarm.engine.llama_adapter.step_interrupt import StepInterrupt
from swarm.shared.stage_messages import HiddenStates

_ABORTED = 2  # llama_decode's status when its abort callback stopped it


class LlamaContext:
    """A KV cache with one sequence id per slot, and the decode call that advances them together.

    With capture_hidden (a non-final pipeline stage) each decode keeps, instead of logits, the last
    layer's hidden state of every token marked as an output; hidden_states() returns them in batch
    order. The cache is then unified (one buffer shared by the slots): llama.cpp splits a batch into
    ubatches in batch order only then, and the capture sees rows in ubatch order.
    """

    def __init__(
        self,
        model: LlamaModel,
        slots: int,
        context_per_slot: int,
        batch_size: int,
        threads: int,
        *,
        capture_hidden: bool = False,
    ) -> None:
        self.capture = HiddenStateCapture(model.n_embd, model.n_layer) if capture_hidden else None
        self._hidden: HiddenStates | None = None
        self.vocab_size = model.vocab_size
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = slots * context_per_slot
        params.n_batch = batch_size
        params.n_ubatch = batch_size
        params.n_seq_max = slots
        params.n_threads = threads
        params.n_threads_batch = threads
        params.no_perf = True
        if self.capture is not None:
            params.cb_eval = self.capture.callback
            params.kv_unified = True
        self._ctx = llama_cpp.llama_init_from_model(model.handle, params)
        if not self._ctx:
            raise ModelLoadError(f"llama.cpp could not create a context of {params.n_ctx} tokens")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        per_sequence = int(llama_cpp.llama_n_ctx_seq(self._ctx))
        # A unified cache lets any one sequence fill it; a slot's fair share is still 1/slots of it.
        self.context_per_slot = per_sequence // slots if self.capture is not None else per_sequence
        self.batch_size = int(llama_cpp.llama_n_batch(self._ctx))  # llama.cpp caps it at the context size
        self._interrupt = StepInterrupt(self._ctx)

    @property
    def handle(self) -> Any:
        return self._ctx

    def interrupt(self) -> None:
        """Any thread: the interruptible decode under way stops early, or else the next interruptible one."""
        self._interrupt.raise_()

    def clear_interrupt(self) -> None:
        """Lowers an interrupt raised since the last decode, so that the next interruptible decode runs whole."""
        self._interrupt.lower()

    def decode(self, batch: TokenBatch | EmbeddingBatch, interruptible: bool = False) -> bool:
        """Computes the batch; False when interrupt() cut it short. llama.cpp then removed the batch's KV cells
        again (a batch is one ubatch: n_ubatch is n_batch), as if it had never run. Every decode, cut short
        or not, lowers a raised interrupt: whoever raised it is served by what the caller does between decodes."""
        if self.capture is not None:
            self._hidden = None
            self.capture.clear()
        self._interrupt.arm(interruptible)
        status = llama_cpp.llama_decode(self._ctx, batch.native)
        self._interrupt.lower()
        if status == _ABORTED and interruptible:
            return False
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status} on {batch.size} tokens")
        if self.capture is not None:
            self._hidden = self.capture.take()
            if len(self._hidden) != batch.outputs:
                raise RuntimeError(f"captured {len(self._hidden)} hidden states for {batch.outputs} outputs")
        return True

    def hidden_states(self) -> HiddenStates:
        """The last decode's hidden states, float32 (outputs, n_embd): one row per output token, in batch order."""
        if self._hidden is None:
            raise RuntimeError("no hidden states: the context does not capture them, or nothing was decoded")
        return self._hidden

    def logits(self, batch_index: int) -> npt.NDArray[np.float32]:
        """A copy of the logits the last decode made for the output token at batch_index."""
        if self.capture is not None:
            raise RuntimeError("a hidden-state context stops before the head: it makes no logits")
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, batch_index)
        if not pointer:
            raise IndexError(f"no logits for batch index {batch_index}")
        return np.ctypeslib.as_array(pointer, shape=(self.vocab_size,)).copy()

    def forget(self, seq_id: int, from_position: int = 0) -> bool:
        """Drops a sequence's KV cells from a position on; False if the cache cannot cut there."""
        start = from_position if from_position > 0 else -1
        return bool(llama_cpp.llama_memory_seq_rm(self._memory, seq_id, start, -1))

    def positions(self, seq_id: int) -> int:
        """How many positions a sequence's KV cells cover: its last position + 1 (0 when it holds none)."""
        return int(llama_cpp.llama_memory_seq_pos_max(self._memory, seq_id)) + 1

    @property
    def threads(self) -> int:
        return int(llama_cpp.llama_n_threads(self._ctx))

    def set_threads(self, threads: int) -> None:
        """From the next decode on (prompt batches too)."""
        llama_cpp.llama_set_n_threads(self._ctx, threads, threads)

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
