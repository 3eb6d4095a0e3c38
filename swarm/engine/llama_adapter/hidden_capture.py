"""A non-final pipeline stage's eval callback: the last layer's hidden states, copied out of llama.cpp's graph."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from swarm.shared.stage_messages import HiddenStates


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
