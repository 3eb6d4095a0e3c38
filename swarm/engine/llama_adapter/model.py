"""A GGUF model's weights and vocabulary in llama.cpp, and the checks that give a bad file a one-line reason."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp

from swarm.engine.llama_adapter.backend import init_backend

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

    def __init__(self, path: Path, repack: bool = True) -> None:
        """repack: let llama.cpp repack weights for its faster CPU kernels (its default). Off, a step of a few
        rows computes each row exactly as a step of one row does (bench/row_exactness), at about the same speed."""
        check_gguf(path)
        self.path = path
        self.repack = repack
        self._model: Any = None
        self.load()

    def load(self) -> None:
        """Loads the weights: at start, and again after close (a worker that freed them while memory was short)."""
        if self._model:
            return
        init_backend()
        params = llama_cpp.llama_model_default_params()
        params.use_extra_bufts = self.repack
        self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), params)
        if not self._model:
            raise ModelLoadError(f"llama.cpp could not load the model: {self.path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.vocab_size = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.context_length_trained = int(llama_cpp.llama_model_n_ctx_train(self._model))
        self.size_bytes = int(llama_cpp.llama_model_size(self._model))

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
        """The token's text. Safe on any thread: the engine thread detokenizes while others read answers,
        and llama.cpp writes the piece with the GIL released, so a buffer shared between calls is not."""
        buffer = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if n < 0:
            buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, -n, 0, False)
        return buffer.raw[:n]

    @property
    def vocab(self) -> Any:
        """The llama_vocab handle, for samplers that read token texts (a grammar)."""
        return self._vocab

    @property
    def end_token(self) -> int:
        """The end-of-sequence token (its end-of-turn token if it has none)."""
        eos = int(llama_cpp.llama_vocab_eos(self._vocab))
        return eos if eos >= 0 else int(llama_cpp.llama_vocab_eot(self._vocab))

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def close(self) -> None:
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None
