"""StepInterrupt: a flag any thread raises to cut the llama_decode under way short, read by llama.cpp without the GIL.

llama.cpp's CPU backend calls an abort callback between the nodes of a decode's graph (hundreds per step). A
Python callback would take the GIL for every one of them, and wait up to the interpreter's switch interval
whenever the worker's event loop holds it. So the callback is C's own strlen, pointed at a two-byte buffer
whose first byte is the flag: it returns 0 (go on) or 1 (stop), which reads as the callback's bool on every
C ABI, and it reads one byte that one Python store writes.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp


def _strlen() -> Any:
    """C's strlen (from the C library this process already runs on) as a ggml_abort_callback."""
    address = ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value
    if address is None:
        raise ImportError("the C library has no strlen")
    return llama_cpp.ggml_abort_callback(address)


_STRLEN = _strlen()
_RAISED = b"\x01"
_LOWERED = b""


class StepInterrupt:
    """The flag of one llama.cpp context. raise_() from any thread; the context's owner arms it per decode."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._flag = ctypes.create_string_buffer(2)  # [flag, NUL]: strlen() is 1 while the flag is raised
        self._never = ctypes.create_string_buffer(1)  # always "": a decode that must not stop points here
        self._armed: bool | None = None

    def raise_(self) -> None:
        """The decode under way stops at its next graph node (an armed one; or the next armed decode, at once)."""
        self._flag.value = _RAISED

    def lower(self) -> None:
        self._flag.value = _LOWERED

    def arm(self, armed: bool) -> None:
        """Whether the next decodes stop for a raised flag (llama.cpp is told only when this changes)."""
        if armed != self._armed:
            data = self._flag if armed else self._never
            llama_cpp.llama_set_abort_callback(self._context, _STRLEN, ctypes.cast(data, ctypes.c_void_p))
            self._armed = armed
