"""A llama.cpp sampler chain per sequence: greedy, or top-k/top-p/min-p/temperature with a seed, in C;
with a grammar, the chain's choice is checked against it and drawn again under it only when refused."""

from __future__ import annotations

import logging

import llama_cpp

from swarm.engine.llama_adapter.context import LlamaContext
from swarm.engine.llama_adapter.grammar_gate import GrammarGate
from swarm.engine.llama_adapter.model import LlamaModel
from swarm.engine.llama_adapter.token_candidates import TokenCandidates
from swarm.shared.types import SamplingParams

log = logging.getLogger(__name__)


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
        self._grammar: GrammarGate | None = None
        self._candidates: TokenCandidates | None = None
        # Only the penalties remember accepted tokens: without them, the chain may sample (and so accept)
        # a token the grammar then refuses, and the fast C path serves the first draw too.
        self._chain_remembers = params.repeat_penalty != 1.0
        self._temperature = params.temperature
        self._end_token = model.end_token
        if params.grammar:
            try:
                self._grammar = GrammarGate(model.vocab, params.grammar, model.is_end_of_generation)
                self._grammar.replay(history[len(history) - generated :] if generated else [])
            except Exception:
                self.close()
                raise
            self._candidates = TokenCandidates(model.vocab_size)

    def sample(self, context: LlamaContext, batch_index: int) -> int:
        """Samples from the logits at batch_index and records the token in the chain's history."""
        if self._grammar is None or self._candidates is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, context.handle, batch_index))
        if self._chain_remembers:
            token = self._candidates.choose(context, batch_index, self._chain)
        else:
            token = int(llama_cpp.llama_sampler_sample(self._chain, context.handle, batch_index))
        if not self._grammar.allows(token):
            token = self._resample(context, batch_index, self._grammar, self._candidates)
            if not self._grammar.allows(token):
                # The grammar allows no token of this vocabulary here: end the sequence, not the worker.
                log.warning("the grammar allows no token of this model's vocabulary here: ending the sequence")
                token = self._end_token
        llama_cpp.llama_sampler_accept(self._chain, token)
        self._grammar.accept(token)
        return token

    def _resample(
        self, context: LlamaContext, batch_index: int, grammar: GrammarGate, candidates: TokenCandidates
    ) -> int:
        """The chain's choice among the tokens the grammar allows, looked for among the likeliest first:
        exact for greedy, and for a draw whenever the tokens left out weigh next to nothing. A chain with
        penalties (which remember tokens) sees the whole vocabulary, filtered, as llama.cpp would show it."""
        if self._chain_remembers:
            return candidates.choose(context, batch_index, grammar.handle, self._chain)
        if self._temperature == 0.0:
            best = candidates.best_allowed(context, batch_index, grammar.handle)
        else:
            best = candidates.sample_among_likeliest(
                context, batch_index, grammar.handle, self._chain, self._temperature
            )
        return best if best is not None else candidates.choose(context, batch_index, grammar.handle, self._chain)

    def close(self) -> None:
        if self._grammar is not None:
            self._grammar.close()
            self._grammar = None
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
