"""Log-probabilities in OpenAI's shapes: chat's choices[].logprobs.content[], and the legacy completions'
tokens / token_logprobs / top_logprobs / text_offset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swarm.shared.types import TokenLogprob


def token_text(logprob: TokenLogprob) -> str:
    """A token's text; bytes of a character split across tokens read as U+FFFD, as llama-server shows them."""
    return logprob.text.decode("utf-8", "replace")


def chat_logprobs(logprobs: Sequence[TokenLogprob]) -> dict[str, Any]:
    def entry(lp: TokenLogprob) -> dict[str, Any]:
        return {"token": token_text(lp), "logprob": lp.logprob, "bytes": list(lp.text)}

    return {"content": [{**entry(lp), "top_logprobs": [entry(t) for t in lp.top]} for lp in logprobs], "refusal": None}


def completion_logprobs(logprobs: Sequence[TokenLogprob], text_offset: int) -> dict[str, Any]:
    """text_offset: where the first token's text starts, in characters from the prompt's start (as OpenAI's
    legacy API counts without echo)."""
    offsets = []
    for lp in logprobs:
        offsets.append(text_offset)
        text_offset += len(token_text(lp))
    return {
        "tokens": [token_text(lp) for lp in logprobs],
        "token_logprobs": [lp.logprob for lp in logprobs],
        "top_logprobs": [{token_text(t): t.logprob for t in lp.top} for lp in logprobs],
        "text_offset": offsets,
    }
