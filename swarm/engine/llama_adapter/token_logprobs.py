"""Log-probabilities of a sampled token and of the likeliest tokens at its place, from one row's raw logits.

They are the log-softmax of the logits the model produced, before any temperature, penalty, top-k/p or
grammar of the sampler chain: what OpenAI and llama-server report, and what llama-cpp-python's
create_completion(logprobs=k) computes, so a client reads the model's own belief, not the sampler's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from swarm.shared.types import TokenLogprob

SAMPLE_STRIDE = 64


def log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """In float32 with the maximum taken out first, as llama-cpp-python's logits_to_logprobs."""
    shifted: npt.NDArray[np.float32] = logits - logits.max()
    shifted -= np.float32(np.log(np.exp(shifted).sum()))
    return shifted


def token_logprob(logprobs: npt.NDArray[np.float32], token: int, top: int) -> TokenLogprob:
    """The token's log-probability and the `top` likeliest tokens' (likeliest first; ties by token id)."""
    likeliest: tuple[TokenLogprob, ...] = ()
    top = min(top, len(logprobs))
    if top > 0:
        candidates = _at_least_top(logprobs, top)  # in token order
        values = logprobs[candidates]
        kth = np.partition(values, -top)[-top]
        above = candidates[values > kth]
        picked = np.concatenate([above, candidates[values == kth][: top - len(above)]])  # ties: lowest ids
        ordered = picked[np.lexsort((picked, -logprobs[picked]))]
        likeliest = tuple(TokenLogprob(int(t), float(logprobs[t])) for t in ordered)
    return TokenLogprob(token, float(logprobs[token]), top=likeliest)


def _at_least_top(logprobs: npt.NDArray[np.float32], top: int) -> npt.NDArray[np.intp]:
    """Token ids among which the `top` likeliest surely are, few of them: those at least as likely as the
    top-th likeliest of every 64th token (which are themselves at least `top`). A partition of the whole
    vocabulary (262,144 tokens on Gemma 3) costs milliseconds; this a comparison pass and a small one."""
    sample = logprobs[::SAMPLE_STRIDE]
    if len(sample) <= top:
        return np.arange(len(logprobs))
    threshold = np.partition(sample, -top)[-top]
    return np.flatnonzero(logprobs >= threshold)
