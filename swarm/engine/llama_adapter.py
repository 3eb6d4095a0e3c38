"""The one module that calls llama.cpp (through llama-cpp-python's low-level ctypes API)."""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

import llama_cpp

from swarm.shared.types import SamplingParams

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable or not a GGUF llama.cpp can load."""


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _forward_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation. llama.cpp is chatty
    # at load time; only its warnings and errors matter to an operator.
    if level in (3, 4):
        log.log(
            logging.WARNING if level == 3 else logging.ERROR, "llama.cpp: %s", text.decode("utf-8", "replace").rstrip()
        )


_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        llama_cpp.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _backend_ready = True


def check_gguf(path: Path) -> None:
    """Fails with a one-line reason when path is not a readable GGUF file."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror}") from exc
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"not a GGUF file (bad magic {magic!r}): {path}")


class LlamaModel:
    """Weights and vocabulary of one GGUF model: tokenize, detokenize, end-of-generation tokens."""

    def __init__(self, path: Path) -> None:
        check_gguf(path)
        _init_backend()
        params = llama_cpp.llama_model_default_params()
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self._model:
            raise ModelLoadError(f"llama.cpp could not load the model: {path}")
        self.path = path
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.vocab_size = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.context_length_trained = int(llama_cpp.llama_model_n_ctx_train(self._model))
        self.size_bytes = int(llama_cpp.llama_model_size(self._model))
        self._piece_buffer = ctypes.create_string_buffer(256)

    @property
    def handle(self) -> Any:
        return self._model

    def tokenize(self, text: str) -> list[int]:
        """Tokens as llama-cpp-python's Llama builds a completion prompt: BOS (if the model wants it) + text."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), tokens, capacity, True, True)
        if n < 0:
            raise ValueError(f"prompt needs {-n} tokens, more than the {capacity} expected")
        return list(tokens[:n])

    def token_bytes(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buffer, 256, 0, False)
        if n < 0:
            buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, -n, 0, False)
            return buffer.raw[:n]
        return self._piece_buffer.raw[:n]

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def close(self) -> None:
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None


class TokenBatch:
    """A reusable llama_batch: tokens of several sequences decoded in one llama_decode."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        self.size = 0

    def clear(self) -> None:
        self.size = 0

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
        return i

    @property
    def native(self) -> Any:
        self._batch.n_tokens = self.size
        return self._batch

    def close(self) -> None:
        llama_cpp.llama_batch_free(self._batch)


class LlamaContext:
    """A KV cache with one sequence id per slot, and the decode call that advances them together."""

    def __init__(self, model: LlamaModel, slots: int, context_per_slot: int, batch_size: int, threads: int) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = slots * context_per_slot
        params.n_batch = batch_size
        params.n_ubatch = batch_size
        params.n_seq_max = slots
        params.n_threads = threads
        params.n_threads_batch = threads
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(model.handle, params)
        if not self._ctx:
            raise ModelLoadError(f"llama.cpp could not create a context of {params.n_ctx} tokens")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.context_per_slot = int(llama_cpp.llama_n_ctx_seq(self._ctx))
        self.batch_size = int(llama_cpp.llama_n_batch(self._ctx))  # llama.cpp caps it at the context size

    @property
    def handle(self) -> Any:
        return self._ctx

    def decode(self, batch: TokenBatch) -> None:
        status = llama_cpp.llama_decode(self._ctx, batch.native)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status} on {batch.size} tokens")

    def forget(self, seq_id: int, from_position: int = 0) -> bool:
        """Drops a sequence's KV cells from a position on; False if the cache cannot cut there."""
        start = from_position if from_position > 0 else -1
        return bool(llama_cpp.llama_memory_seq_rm(self._memory, seq_id, start, -1))

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None


class Sampler:
    """A llama.cpp sampler chain for one sequence; sampling runs in C, not over Python lists."""

    PENALTY_WINDOW = 64  # tokens the repetition penalty looks back over

    def __init__(self, params: SamplingParams, history: list[int], vocab_size: int) -> None:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        if params.repeat_penalty != 1.0:
            penalties = llama_cpp.llama_sampler_init_penalties(
                vocab_size, self.PENALTY_WINDOW, params.repeat_penalty, 0.0, 0.0
            )
            add(chain, penalties)
        if params.greedy:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
            add(chain, llama_cpp.llama_sampler_init_dist(params.seed & 0xFFFFFFFF))
        if params.repeat_penalty != 1.0:
            for token in history[-self.PENALTY_WINDOW :]:
                llama_cpp.llama_sampler_accept(chain, token)
        self._chain = chain

    def sample(self, context: LlamaContext, batch_index: int) -> int:
        """Samples from the logits at batch_index and records the token in the chain's history."""
        return int(llama_cpp.llama_sampler_sample(self._chain, context.handle, batch_index))

    def close(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
