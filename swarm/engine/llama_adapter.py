"""The one module that calls llama.cpp (through llama-cpp-python's low-level ctypes API)."""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import llama_cpp
import numpy as np
import numpy.typing as npt

from swarm.shared.stage_messages import HiddenStates
from swarm.shared.types import SamplingParams

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class StagePosition:
    """Where a stage file sits in its model: stage index of count, layers [layer_start, layer_end)."""

    index: int
    count: int
    layer_start: int
    layer_end: int


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable or not a GGUF llama.cpp can load."""


# ggml's levels (1 debug, 2 info, 3 warn, 4 error; 5 continues a line, mostly progress dots) as
# Python's. llama.cpp's warnings are about model files and cache layouts, not the swarm (e.g.
# "control-looking token ... probably a bug in the model" on Gemma): they show with --log-level debug.
_LLAMA_LOG_LEVELS = {2: logging.DEBUG, 3: logging.DEBUG, 4: logging.ERROR}


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _forward_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    python_level = _LLAMA_LOG_LEVELS.get(level)
    if python_level is not None and log.isEnabledFor(python_level):
        log.log(python_level, "llama.cpp: %s", text.decode("utf-8", "replace").rstrip())


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

    @property
    def n_embd(self) -> int:
        """Width of a hidden state: what a stage passes to the next one per token."""
        return int(llama_cpp.llama_model_n_embd(self._model))

    @property
    def n_layer(self) -> int:
        return int(llama_cpp.llama_model_n_layer(self._model))

    def metadata(self, key: str) -> str | None:
        """A scalar GGUF metadata value as text, or None when the file has no such key."""
        buffer = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buffer, len(buffer))
        if n >= len(buffer):  # snprintf semantics: n is the full length (chat templates run to kilobytes)
            buffer = ctypes.create_string_buffer(n + 1)
            n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buffer, len(buffer))
        return buffer.value.decode("utf-8", "replace") if n >= 0 else None

    @property
    def stage(self) -> StagePosition | None:
        """Where this file sits in a split model (see stage_files), or None for a whole model."""
        keys = ("index", "count", "layer_start", "layer_end")
        values = [self.metadata(f"swarm.stage.{key}") for key in keys]
        if any(v is None for v in values):
            return None
        return StagePosition(*(int(v) for v in values if v is not None))

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
        outputs: Literal["all", "last", "none"] = "all",
    ) -> int:
        """Appends consecutive hidden states of one sequence, shape (n, n_embd) or (n_embd,); returns the
        batch index of the first. A non-final stage needs outputs="all"; a final one "last" for the next token."""
        block = np.asarray(rows, dtype=np.float32).reshape(-1, self.n_embd)
        n, first = len(block), self.size
        if first + n > self.capacity:
            raise IndexError(f"batch holds {self.capacity} rows; {first} used, {n} more asked")
        self._embd[first : first + n] = block
        b = self._batch
        for k in range(n):
            i = first + k
            b.pos[i] = first_position + k
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq_id
            b.logits[i] = outputs == "all" or (outputs == "last" and k == n - 1)
        self.size = first + n
        self.outputs += n if outputs == "all" else int(outputs == "last" and n > 0)
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


def _ggml_base() -> ctypes.CDLL:
    """libggml-base beside libllama: ggml_get_name and ggml_nbytes, which llama_cpp does not bind."""
    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_get_name.restype = ctypes.c_char_p
    lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
    lib.ggml_nbytes.restype = ctypes.c_size_t
    lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    lib.ggml_backend_tensor_get.restype = None
    return lib


class HiddenStateCapture:
    """The cb_eval of a non-final stage: copies out the last layer's output, then stops the graph.

    It asks only for l_out-{n_layer-1}, so llama.cpp runs the layers and skips the output norm and
    head. That tensor holds the rows of the tokens marked as outputs, in ubatch order; rows of a
    decode's ubatches accumulate until take().
    """

    _ggml: ctypes.CDLL | None = None

    def __init__(self, n_embd: int, n_layer: int) -> None:
        if HiddenStateCapture._ggml is None:
            HiddenStateCapture._ggml = _ggml_base()
        self._lib = HiddenStateCapture._ggml
        self.n_embd = n_embd
        self._target = f"l_out-{n_layer - 1}".encode()
        self._rows: list[HiddenStates] = []
        # llama.cpp keeps only the C pointer: this object must outlive the context that calls it.
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)

    def _on_tensor(self, tensor: int, ask: bool, _user_data: Any) -> bool:
        is_target = bool(self._lib.ggml_get_name(tensor) == self._target)
        if ask or not is_target:
            return is_target  # asking: observe only the target; observing anything else: go on
        rows = np.empty(self._lib.ggml_nbytes(tensor) // 4, dtype=np.float32)
        self._lib.ggml_backend_tensor_get(tensor, rows.ctypes.data, 0, rows.nbytes)
        self._rows.append(rows.reshape(-1, self.n_embd))
        return False

    def clear(self) -> None:
        self._rows.clear()

    def take(self) -> HiddenStates:
        """Every row captured since clear(), float32 (rows, n_embd), and forgets them."""
        rows = np.concatenate(self._rows) if self._rows else np.empty((0, self.n_embd), dtype=np.float32)
        self._rows.clear()
        return rows


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

    @property
    def handle(self) -> Any:
        return self._ctx

    def decode(self, batch: TokenBatch | EmbeddingBatch) -> None:
        if self.capture is not None:
            self._hidden = None
            self.capture.clear()
        status = llama_cpp.llama_decode(self._ctx, batch.native)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status} on {batch.size} tokens")
        if self.capture is not None:
            self._hidden = self.capture.take()
            if len(self._hidden) != batch.outputs:
                raise RuntimeError(f"captured {len(self._hidden)} hidden states for {batch.outputs} outputs")

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
