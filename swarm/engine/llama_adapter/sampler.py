"""A llama.cpp sampler chain per sequence: greedy, or top-k/top-p/min-p/temperature with a seed, in C."""

from __future__ import annotations

import llama_cpp

from swarm.engine.llama_adapter.context import LlamaContext
from swarm.shared.types import SamplingParams


class Sampler:
    """A llama.cpp sampler chain for one sequence; sampling runs in C, not over Python lists."""

    PENALTY_WINDOW = 64  # tokens the repetition penalty looks back over

    def __init__(self, params: SamplingParams, history: list[int], vocab_size: int) -> None:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        if params.repeat_penalty != 1.0:
            penalties = llama_cpp.llama_sampler_init_penalties(
                vocab_size, self.PENALTY_WINDOW, params.repeat_penalty, 0.0, 0.0
            )
            add(chain, penalties)
        if params.greedy:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
            add(chain, llama_cpp.llama_sampler_init_dist(params.seed & 0xFFFFFFFF))
        if params.repeat_penalty != 1.0:
            for token in history[-self.PENALTY_WINDOW :]:
                llama_cpp.llama_sampler_accept(chain, token)
        self._chain = chain

    def sample(self, context: LlamaContext, batch_index: int) -> int:
        """Samples from the logits at batch_index and records the token in the chain's history."""
        return int(llama_cpp.llama_sampler_sample(self._chain, context.handle, batch_index))

    def close(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
