"""llama.cpp's process-wide set-up: the backend, initialised once, and its log forwarded to Python logging."""

from __future__ import annotations

import ctypes
import logging

import llama_cpp

log = logging.getLogger(__name__)

# ggml's levels (1 debug, 2 info, 3 warn, 4 error; 5 continues a line, mostly progress dots) as
# Python's. llama.cpp's warnings are about model files and cache layouts, not the swarm (e.g.
# "control-looking token ... probably a bug in the model" on Gemma): they show with --log-level debug.
_LLAMA_LOG_LEVELS = {2: logging.DEBUG, 3: logging.DEBUG, 4: logging.ERROR}
# The errors llama.cpp logs for a decode its abort callback stopped (ggml status 1, llama_decode's 2): the
# swarm asked for that (StepInterrupt), so they are debug lines too. Any other status stays an error.
_ABORTED_ENDINGS = ("compute status: 1", "failed with error 1", "failed to decode, ret = 2")


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _forward_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    python_level = _LLAMA_LOG_LEVELS.get(level)
    if python_level is None:
        return
    message = text.decode("utf-8", "replace").rstrip()
    if python_level == logging.ERROR and message.endswith(_ABORTED_ENDINGS):
        python_level = logging.DEBUG
    if log.isEnabledFor(python_level):
        log.log(python_level, "llama.cpp: %s", message)


_backend_ready = False


def init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        llama_cpp.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _backend_ready = True
