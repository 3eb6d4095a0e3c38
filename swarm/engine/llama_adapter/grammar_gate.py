"""llama.cpp's grammar sampler for one sequence: asks whether a token fits, and follows the tokens chosen.

Applying a grammar to the whole vocabulary costs a pass over every token's text each step, which on
Gemma 3's 262,144 tokens is most of a small model's step. Like llama.cpp's common sampler, the
Sampler first samples unconstrained and asks this gate about that one token (a one-candidate
array); only a refused token costs the whole-vocabulary pass.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp

GRAMMAR_ROOT = b"root"
# Characters with a meaning in an ECMAScript regex (llama.cpp's std::regex): a trigger is literal text.
_REGEX_SPECIAL = frozenset("^$\\.*+?()[]{}|/")


def literal_pattern(text: str) -> bytes:
    """A regex matching exactly `text`, for llama.cpp's lazy grammar (which takes patterns)."""
    return "".join("\\" + char if char in _REGEX_SPECIAL else char for char in text).encode()


class GrammarRefused(ValueError):
    """The grammar cannot be built, or a token that must be replayed does not fit it."""


class GrammarGate:
    def __init__(self, vocab: Any, grammar: str, is_end: Any, trigger: str = "") -> None:
        """vocab: the model's llama_vocab; is_end(token): whether a token ends generation; trigger: text from
        whose first appearance in the output on the grammar holds (llama.cpp's lazy grammar); "": from the start.

        Before its trigger a lazy grammar allows every token (an end token too), and once the trigger
        appears llama.cpp replays the tokens that spelled it into the grammar, which must begin with it."""
        if trigger:
            patterns = (ctypes.c_char_p * 1)(literal_pattern(trigger))
            self.handle = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
                vocab, grammar.encode(), GRAMMAR_ROOT, patterns, 1, None, 0
            )
        else:
            self.handle = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), GRAMMAR_ROOT)
        if not self.handle:
            raise GrammarRefused("grammar: llama.cpp cannot parse it")
        self._is_end = is_end
        self._one = llama_cpp.llama_token_data(0, 1.0, 0.0)
        self._one_array = llama_cpp.llama_token_data_array(
            data=ctypes.pointer(self._one), size=1, selected=-1, sorted=False
        )

    def allows(self, token: int) -> bool:
        """Whether the grammar, in its present state, lets `token` come next (an end token: only when complete)."""
        self._one.id = token  # type: ignore[assignment]  # typed c_int32 by the stubs; ctypes takes an int
        self._one.logit, self._one.p = 1.0, 0.0
        self._one_array.size, self._one_array.selected = 1, -1
        llama_cpp.llama_sampler_apply(self.handle, ctypes.byref(self._one_array))
        return not math.isinf(self._one.logit)

    def accept(self, token: int) -> None:
        """Advances the grammar past `token`, which allows() passed. An end token ends the sequence instead:
        llama.cpp aborts the process when an incomplete grammar is handed one, so it never is."""
        if not self._is_end(token):
            llama_cpp.llama_sampler_accept(self.handle, token)

    def replay(self, tokens: list[int]) -> None:
        """Rebuilds the state a failed worker reached: its generated tokens, accepted in order."""
        for position, token in enumerate(tokens):
            if not self.allows(token):
                raise GrammarRefused(f"resume token {token} (generated token {position}) does not fit the grammar")
            self.accept(token)

    def close(self) -> None:
        if self.handle:
            llama_cpp.llama_sampler_free(self.handle)
            self.handle = None
