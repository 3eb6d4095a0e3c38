"""A second llama.cpp context on a loaded model that pools each sequence's last hidden states into one vector.

It shares the model's weights (llama_init_from_model only adds a KV cache and buffers). Pooling is what the
GGUF's `{arch}.pooling_type` says; a causal LM says none (llama.cpp would then return a vector per token,
which OpenAI's API cannot carry), and gets mean pooling, as llama-cpp-python's Llama(pooling_type=MEAN) and
llama-server --pooling mean do. The cache is unified, so one long input may use all of it.
"""

from __future__ import annotations

import llama_cpp
import numpy as np
import numpy.typing as npt

from swarm.engine.llama_adapter.batches import TokenBatch
from swarm.engine.llama_adapter.model import LlamaModel, ModelLoadError

POOLING_NAMES = {
    llama_cpp.LLAMA_POOLING_TYPE_MEAN: "mean",
    llama_cpp.LLAMA_POOLING_TYPE_CLS: "cls",
    llama_cpp.LLAMA_POOLING_TYPE_LAST: "last",
}


def model_pooling(model: LlamaModel) -> int:
    """The pooling the model's metadata asks for; mean where it asks for none or for rank (a reranker's)."""
    arch = model.metadata("general.architecture") or ""
    said = model.metadata(f"{arch}.pooling_type")
    pooling = int(said) if said is not None and said.lstrip("-").isdigit() else llama_cpp.LLAMA_POOLING_TYPE_NONE
    return pooling if pooling in POOLING_NAMES else llama_cpp.LLAMA_POOLING_TYPE_MEAN


class EmbeddingContext:
    """Sequences of tokens in, one pooled float32 vector per sequence out; several sequences per decode."""

    def __init__(self, model: LlamaModel, tokens: int, sequences: int, threads: int) -> None:
        self.pooling = model_pooling(model)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = tokens
        params.n_batch = tokens
        params.n_ubatch = tokens  # a pooled sequence must sit in one ubatch
        params.n_seq_max = sequences
        params.n_threads = threads
        params.n_threads_batch = threads
        params.embeddings = True
        params.pooling_type = self.pooling
        params.kv_unified = True
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(model.handle, params)
        if not self._ctx:
            raise ModelLoadError(f"llama.cpp could not create an embedding context of {tokens} tokens")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.tokens = int(llama_cpp.llama_n_batch(self._ctx))
        self.sequences = sequences
        self.n_embd = model.n_embd
        self._batch = TokenBatch(self.tokens)

    def embed(self, sequences: list[list[int]]) -> list[npt.NDArray[np.float32]]:
        """One decode of every sequence (at most `sequences` of them, `tokens` tokens in all); their vectors."""
        batch = self._batch
        batch.clear()
        for seq_id, tokens in enumerate(sequences):
            for position, token in enumerate(tokens):
                batch.add(token, position, seq_id, True)
        llama_cpp.llama_memory_clear(self._memory, True)
        status = llama_cpp.llama_decode(self._ctx, batch.native)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status} on {batch.size} tokens to embed")
        vectors = []
        for seq_id in range(len(sequences)):
            pointer = llama_cpp.llama_get_embeddings_seq(self._ctx, seq_id)
            if not pointer:
                raise RuntimeError(f"llama.cpp pooled no embedding for sequence {seq_id}")
            vectors.append(np.ctypeslib.as_array(pointer, shape=(self.n_embd,)).copy())
        return vectors

    def close(self) -> None:
        if self._ctx:
            self._batch.close()
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
