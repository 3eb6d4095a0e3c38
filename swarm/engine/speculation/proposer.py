"""PromptLookup: proposes the tokens that followed the sequence's latest n-gram earlier in its own context.

A sequence that re-emits text from its prompt (an edited passage, code, a quoted answer) or
repeats itself finds its last few tokens earlier in its context; what followed them there is
a proposal the model verifies in one step. The index is kept incrementally: each new token
costs a few dict updates, and a proposal one lookup per n-gram length.
"""

from __future__ import annotations

from collections.abc import Iterable


class PromptLookup:
    """The context of one sequence (prompt, then each token as it is decided) and its n-gram index."""

    def __init__(self, tokens: Iterable[int] = (), longest: int = 3, shortest: int = 1) -> None:
        if not 1 <= shortest <= longest:
            raise ValueError("n-gram lengths must satisfy 1 <= shortest <= longest")
        self._longest = longest
        self._shortest = shortest
        self._tokens: list[int] = []
        # n-gram -> where its latest occurrence ended (the index of the token after it), counting only
        # occurrences that end before the last token: the sequence's own suffix never matches itself.
        self._ends: dict[tuple[int, ...], int] = {}
        self.extend(tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def tokens(self) -> list[int]:
        """The whole context so far (not a copy: callers only read it)."""
        return self._tokens

    def extend(self, tokens: Iterable[int]) -> None:
        for token in tokens:
            end = len(self._tokens)  # n-grams ending here get a token after them: index them now
            for n in range(self._shortest, min(self._longest, end) + 1):
                self._ends[tuple(self._tokens[end - n : end])] = end
            self._tokens.append(token)

    def propose(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the longest suffix n-gram found earlier; [] when none recurs."""
        if limit <= 0:
            return []
        tokens = self._tokens
        for n in range(min(self._longest, len(tokens)), self._shortest - 1, -1):
            end = self._ends.get(tuple(tokens[len(tokens) - n :]))
            if end is not None:
                return tokens[end : end + limit]
        return []
