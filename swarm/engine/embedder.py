"""Embedder: a worker's embeddings, batched many inputs per llama_decode on a thread of their own.

The embedding context is opened on the first request (a worker that never embeds pays nothing) on
the model the engine already loaded. The requests waiting when the thread takes work are embedded
together: their inputs are packed in order into decodes of at most `sequences` inputs and `tokens`
tokens, as llama-cpp-python's embed does, so many small requests share decodes as a large one does.
Each vector is L2-normalized, as OpenAI's and llama-server's are. The thread is the embedder's own:
never the event loop, and beside the generation engine's thread rather than in its steps.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

import numpy as np

from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.llama_adapter.embedding_context import POOLING_NAMES, EmbeddingContext
from swarm.shared.embedding_messages import EmbedInput
from swarm.shared.errors import ErrorCode, SwarmError

log = logging.getLogger(__name__)

Embedded = tuple[list[list[float]], int]  # a unit vector per input, and the tokens embedded


@dataclass(frozen=True)
class _Job:
    inputs: tuple[EmbedInput, ...]
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[Embedded]

    def settle(self, outcome: Embedded | BaseException) -> None:
        """From the embedder's thread: the caller's loop sets the answer (unless the caller left)."""

        def settle_now() -> None:
            if self.answer.done():
                return
            if isinstance(outcome, BaseException):
                self.answer.set_exception(outcome)
            else:
                self.answer.set_result(outcome)

        self.loop.call_soon_threadsafe(settle_now)


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
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="swarm-embed", daemon=True)
        self._lock = threading.Lock()  # starting the thread and closing do not cross
        self._closed = False
        self.decodes = 0  # llama_decode calls so far

    async def embed(self, inputs: tuple[EmbedInput, ...]) -> Embedded:
        """One unit vector per input, in order, and the tokens embedded; INVALID_ARGUMENT names a bad input."""
        loop = asyncio.get_running_loop()
        job = _Job(inputs, loop, loop.create_future())
        with self._lock:
            if self._closed:
                raise SwarmError(ErrorCode.UNAVAILABLE, "worker is shutting down")
            if not self._thread.is_alive():
                self._thread.start()
            self._jobs.put(job)
        return await job.answer

    def close(self) -> None:
        """Ends the thread after the work it has, then frees the context (before the model is freed)."""
        with self._lock:
            self._closed = True
            started = self._thread.is_alive()
            self._jobs.put(None)
        if started:
            self._thread.join()
        if self._context is not None:
            self._context.close()
            self._context = None

    # ------------------------------------------------------------ the embedder's thread

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            jobs = [job]
            while True:  # every request waiting now shares the decodes
                try:
                    following = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    self._jobs.put(None)  # ends the loop once these are answered
                    break
                jobs.append(following)
            self._answer(jobs)

    def _answer(self, jobs: list[_Job]) -> None:
        tokenized: list[tuple[_Job, list[list[int]]]] = []
        for job in jobs:
            try:
                tokenized.append((job, [self._tokens_of(i, item) for i, item in enumerate(job.inputs)]))
            except SwarmError as refusal:  # a bad input fails its own request only
                job.settle(refusal)
        try:
            vectors = self._vectors([s for _, sequences in tokenized for s in sequences])
        except Exception as exc:
            log.exception("embedding failed")
            for job, _ in tokenized:
                job.settle(SwarmError(ErrorCode.INTERNAL, f"embedding failed: {exc}"))
            return
        start = 0
        for job, sequences in tokenized:
            job.settle((vectors[start : start + len(sequences)], sum(len(s) for s in sequences)))
            start += len(sequences)

    def _vectors(self, sequences: list[list[int]]) -> list[list[float]]:
        if not sequences:
            return []
        context = self._open()
        vectors: list[list[float]] = []
        for group in decode_groups([len(s) for s in sequences], self._sequences, context.tokens):
            self.decodes += 1
            for vector in context.embed(sequences[group]):
                norm = float(np.linalg.norm(vector))
                vectors.append((vector / norm if norm > 0 else vector).tolist())
        return vectors

    def _tokens_of(self, index: int, item: EmbedInput) -> list[int]:
        tokens = self._model.tokenize(item) if isinstance(item, str) else list(item)
        if not tokens:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"input[{index}]: makes no tokens for this model")
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
