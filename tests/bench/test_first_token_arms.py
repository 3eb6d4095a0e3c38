"""bench-first-token's bare arms reuse only BOS from the previous prompt, as the swarm's slot does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from swarm.bench.first_token import LowLevelPrefill, bare_first_token_ms

pytestmark = pytest.mark.timeout(120)


def test_the_low_level_arm_keeps_bos_cached_and_decodes_the_rest_of_each_prompt(tiny_model: Path) -> None:
    arm = LowLevelPrefill(tiny_model, threads=1)
    try:
        first, second = "0.1 one two three", "0.2 four five six seven"
        assert arm.first_token_ms(first) > 0
        assert arm._batch.size == len(arm._model.tokenize(first))  # nothing cached yet: every token decoded
        assert arm.first_token_ms(second) > 0
        tokens = len(arm._model.tokenize(second))
        assert arm._batch.size == tokens - 1  # all but BOS, though the first prompt shares "<BOS>0." with it
        assert arm._context.positions(0) == tokens
    finally:
        arm.close()


def test_the_llama_cpp_python_arm_starts_each_prompt_with_only_bos_cached(tiny_model: Path) -> None:
    llm = llama_cpp.Llama(str(tiny_model), n_ctx=256, n_threads=1, verbose=False, seed=0)
    cached_at_call: list[int] = []
    create_completion = llm.create_completion

    def noting(*args: Any, **kwargs: Any) -> Any:
        cached_at_call.append(llm.n_tokens)
        return create_completion(*args, **kwargs)

    llm.create_completion = noting  # type: ignore[method-assign]
    try:
        bare_first_token_ms(llm, "0.1 one two three")
        bare_first_token_ms(llm, "0.2 four five six")  # shares "<BOS>0." with the first
    finally:
        llm.close()
    assert cached_at_call == [0, 1]
