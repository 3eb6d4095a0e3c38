"""PrefixIndex: which texts each worker probably still holds in its KV cache, for prefix-affinity routing."""

from __future__ import annotations

import os
from collections import deque


class PrefixIndex:
    """Remembers the last few texts (prompt + completion) run on each worker.

    A worker keeps each slot's last sequence in its KV cache, so it holds about as many
    texts as it has slots; a request that extends one of them (a chat's next turn)
    prefills only its new suffix there.
    """

    def __init__(self, max_text_chars: int = 64 * 1024) -> None:
        self._texts: dict[str, deque[str]] = {}
        self._max_chars = max_text_chars

    def record(self, worker_id: str, slots: int, text: str) -> None:
        texts = self._texts.get(worker_id)
        if texts is None or texts.maxlen != slots:
            texts = self._texts[worker_id] = deque(texts or (), maxlen=max(1, slots))
        texts.append(text[: self._max_chars])

    def forget(self, worker_id: str) -> None:
        self._texts.pop(worker_id, None)

    def matches(self, prompt: str) -> dict[str, int]:
        """Per worker, the longest prefix (in characters) prompt shares with a text it ran."""
        hits = {}
        for worker_id, texts in self._texts.items():
            # A character prefix of two texts, not a path prefix.
            best = max((len(os.path.commonprefix([prompt, text])) for text in texts), default=0)  # noqa: RUF071
            if best:
                hits[worker_id] = best
        return hits
