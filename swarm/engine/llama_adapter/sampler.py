"""A llama.cpp sampler chain per sequence: greedy, or top-k/top-p/min-p/temperature with a seed, in C;
with a grammar, its choices go through a ConstrainedChoice."""

from __future__ import annotations

import llama_cpp

from swarm.engine.llama_adapter.constrained_choice import ConstrainedChoice
from swarm.engine.llama_adapter.context import LlamaContext
from swarm.engine.llama_adapter.model import LlamaModel
from swarm.engine.llama_adapter.token_logprobs import log_softmax, token_logprob
from swarm.shared.stage_messages import Sampled
from swarm.shared.types import SamplingParams


class Sampler:
    """A llama.cpp sampler chain for one sequence; sampling runs in C, not over Python lists."""

    PENALTY_WINDOW = 64  # tokens the repetition penalty looks back over

    def __init__(self, params: SamplingParams, history: list[int], model: LlamaModel, generated: int = 0) -> None:
        """history: the sequence so far, whose last `generated` tokens it generated before (a failover's
        resume tokens): the grammar, if any, replays exactly those."""
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        if params.repeat_penalty != 1.0:
            penalties = llama_cpp.llama_sampler_init_penalties(
                model.vocab_size, self.PENALTY_WINDOW, params.repeat_penalty, 0.0, 0.0
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
        self._logprobs = params.logprobs
        self._top_logprobs = params.top_logprobs
        self._constrained: ConstrainedChoice | None = None
        if params.grammar:
            try:
                self._constrained = ConstrainedChoice(
                    params, model, history[len(history) - generated :] if generated else []
                )
            except Exception:
                self.close()
                raise

    def draw(self, context: LlamaContext, batch_index: int) -> Sampled:
        """sample(), with the token's log-probabilities when the params ask for them (nothing computed else)."""
        if not self._logprobs:
            return Sampled(self.sample(context, batch_index))
        logprobs = log_softmax(context.logits(batch_index))  # a copy, read before any sampler touches the row
        token = self.sample(context, batch_index)
        return Sampled(token, token_logprob(logprobs, token, self._top_logprobs))

    def sample(self, context: LlamaContext, batch_index: int) -> int:
        """Samples from the logits at batch_index and records the token in the chain's history."""
        if self._constrained is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, context.handle, batch_index))
        token = self._constrained.choose(context, batch_index, self._chain)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def close(self) -> None:
        if self._constrained is not None:
            self._constrained.close()
            self._constrained = None
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
