"""Embedder: a worker's embeddings, batched many inputs per llama_decode on a thread of their own.

The embedding context is opened on the first request (a worker that never embeds pays nothing) on
the model the engine already loaded. Inputs are packed in order into decodes of at most
`sequences` inputs and `tokens` tokens, as llama-cpp-python's embed does; each vector is
L2-normalized, as OpenAI's and llama-server's are. The calls run on the embedder's own thread:
never on the event loop, and beside the generation engine's thread rather than in its steps.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.llama_adapter.embedding_context import POOLING_NAMES, EmbeddingContext
from swarm.shared.embedding_messages import EmbedInput
from swarm.shared.errors import ErrorCode, SwarmError

log = logging.getLogger(__name__)


class Embedder:
    CONTEXT_TOKENS = 4096  # the most tokens of one decode, and of one input
    SEQUENCES = 32  # the most inputs of one decode

    def __init__(
        self, model: LlamaModel, threads: int, tokens: int = CONTEXT_TOKENS, sequences: int = SEQUENCES
    ) -> None:
        if sequences < 1 or sequences & (sequences - 1):
            # llama.cpp's graph for other counts fails an assertion in its pooling (seen with 3), aborting the process
            raise ValueError(f"sequences must be a power of two, got {sequences}")
        self._model = model
        self._threads = threads
        self._tokens = min(tokens, model.context_length_trained or tokens)
        self._sequences = sequences
        self._context: EmbeddingContext | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="swarm-embed")

    async def embed(self, inputs: tuple[EmbedInput, ...]) -> tuple[list[list[float]], int]:
        """One unit vector per input, in order, and the tokens embedded; INVALID_ARGUMENT names a bad input."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.embed_now, inputs)

    def embed_now(self, inputs: tuple[EmbedInput, ...]) -> tuple[list[list[float]], int]:
        """embed() on the calling thread (the embedder's own, or a benchmark's)."""
        sequences = [self._tokens_of(i, item) for i, item in enumerate(inputs)]
        context = self._open()
        vectors: list[list[float]] = []
        for group in decode_groups([len(s) for s in sequences], self._sequences, context.tokens):
            for vector in context.embed(sequences[group]):
                norm = float(np.linalg.norm(vector))
                vectors.append((vector / norm if norm > 0 else vector).tolist())
        return vectors, sum(len(s) for s in sequences)

    def _tokens_of(self, index: int, item: EmbedInput) -> list[int]:
        tokens = self._model.tokenize(item) if isinstance(item, str) else list(item)
        bad = [t for t in tokens if not 0 <= t < self._model.vocab_size]
        if bad:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"input[{index}]: {bad[0]} is not a token of this model")
        if len(tokens) > self._tokens:
            raise SwarmError(
                ErrorCode.INVALID_ARGUMENT,
                f"input[{index}]: {len(tokens)} tokens; this worker embeds at most {self._tokens} per input",
            )
        return tokens

    def _open(self) -> EmbeddingContext:
        if self._context is None:
            self._context = EmbeddingContext(self._model, self._tokens, self._sequences, self._threads)
            log.info(
                "embedding context open: %s pooling, %d tokens, %d inputs per decode",
                POOLING_NAMES[self._context.pooling],
                self._context.tokens,
                self._sequences,
            )
        return self._context

    def close(self) -> None:
        """Waits for the embedding under way, then frees the context (before the model is freed)."""
        self._thread.shutdown(wait=True)
        if self._context is not None:
            self._context.close()
            self._context = None


def decode_groups(lengths: list[int], sequences: int, tokens: int) -> list[slice]:
    """Consecutive runs of inputs, each at most `sequences` inputs and `tokens` tokens (every input fits alone)."""
    groups = []
    start = 0
    while start < len(lengths):
        end, used = start, 0
        while end < len(lengths) and end - start < sequences and used + lengths[end] <= tokens:
            used += lengths[end]
            end += 1
        groups.append(slice(start, end))
        start = end
    return groups
