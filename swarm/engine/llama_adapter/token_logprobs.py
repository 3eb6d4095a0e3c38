"""Log-probabilities of a sampled token and of the likeliest tokens at its place, from one row's raw logits.

They are the log-softmax of the logits the model produced, before any temperature, penalty, top-k/p or
grammar of the sampler chain: what OpenAI and llama-server report, and what llama-cpp-python's
create_completion(logprobs=k) computes, so a client reads the model's own belief, not the sampler's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from swarm.shared.types import TokenLogprob


def log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """In float32 with the maximum taken out first, as llama-cpp-python's logits_to_logprobs."""
    shifted: npt.NDArray[np.float32] = logits - logits.max()
    shifted -= np.float32(np.log(np.exp(shifted).sum()))
    return shifted


def token_logprob(logprobs: npt.NDArray[np.float32], token: int, top: int) -> TokenLogprob:
    """The token's log-probability and the `top` likeliest tokens' (likeliest first; ties by token id)."""
    likeliest: tuple[TokenLogprob, ...] = ()
    if top > 0:
        picked = np.argpartition(logprobs, -top)[-top:]
        ordered = picked[np.lexsort((picked, -logprobs[picked]))]
        likeliest = tuple(TokenLogprob(int(t), float(logprobs[t])) for t in ordered)
    return TokenLogprob(token, float(logprobs[token]), top=likeliest)
