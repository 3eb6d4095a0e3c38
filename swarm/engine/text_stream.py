"""Turns generated token bytes into text pieces, honouring UTF-8 boundaries and stop strings."""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Release:
    """Text that may be sent to the client now, and the tokens that produced it."""

    text: str
    token_ids: tuple[int, ...]
    stopped: bool = False  # a stop string was found; nothing after it may be sent


class TextStream:
    """Holds back bytes of an unfinished UTF-8 character and any tail that may start a stop string.

    A stop string may span several tokens, so text that could be its beginning is
    held until the next token proves it is not; the stop string itself is never sent.
    """

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._stop = tuple(s for s in stop if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held_text = ""
        self._held_tokens: list[int] = []
        self._stopped = False

    def feed(self, token_id: int, piece: bytes) -> Release:
        if self._stopped:
            raise RuntimeError("feed after a stop string was found")
        self._held_tokens.append(token_id)
        self._held_text += self._decoder.decode(piece)
        cut = self._first_stop_index()
        if cut is not None:
            self._stopped = True
            return self._release(cut, stopped=True)
        return self._release(len(self._held_text) - self._stop_prefix_length())

    def flush(self) -> Release:
        """Releases everything held, at the end of generation."""
        if self._stopped:
            return Release("", ())
        self._held_text += self._decoder.decode(b"", final=True)
        return self._release(len(self._held_text))

    def _release(self, upto: int, stopped: bool = False) -> Release:
        text = self._held_text[:upto]
        self._held_text = "" if stopped else self._held_text[upto:]
        if not text and not stopped:
            return Release("", ())
        tokens = tuple(self._held_tokens)
        self._held_tokens = []
        return Release(text, tokens, stopped)

    def _first_stop_index(self) -> int | None:
        found = [i for i in (self._held_text.find(s) for s in self._stop) if i >= 0]
        return min(found) if found else None

    def _stop_prefix_length(self) -> int:
        """Length of the longest tail of the held text that begins some stop string."""
        text = self._held_text
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
