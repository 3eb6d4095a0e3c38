"""Choosing each token of a grammar-constrained sequence as llama.cpp's common sampler does, only cheaper.

The chain draws as if unconstrained, and the grammar is asked about that one token. Only when it
refuses does the choice need the tokens the grammar allows; applying the grammar to a whole
vocabulary (262,144 tokens on Gemma 3) costs more than a small model's decode step, so the redraw
first tries ways that give the same answer from far fewer tokens:

- greedy: the likeliest allowed token is almost always among the 1,024 likeliest tokens;
- temperature alone: drawing again from the same distribution until a draw is allowed is
  exactly a draw from the allowed tokens (rejection sampling), at a cost of one check per draw;
- top-k: when the 1,024 likeliest tokens hold k allowed ones, they are the allowed top k;
- top-p/min-p: the 1,024 likeliest, when everything less likely weighs under 0.1% of the allowed.

When none applies (or a penalty, which remembers tokens, is in the chain), the grammar is applied
to the whole vocabulary and the chain draws from what is left, as llama.cpp would.
"""

from __future__ import annotations

import logging
from typing import Any

import llama_cpp
import numpy as np

from swarm.engine.llama_adapter.context import LlamaContext
from swarm.engine.llama_adapter.grammar_gate import GrammarGate
from swarm.engine.llama_adapter.model import LlamaModel
from swarm.engine.llama_adapter.token_candidates import TokenCandidates
from swarm.shared.types import SamplingParams

log = logging.getLogger(__name__)


class ConstrainedChoice:
    REDRAWS = 256  # draws tried before the whole vocabulary is filtered instead

    def __init__(self, params: SamplingParams, model: LlamaModel, generated: list[int]) -> None:
        """generated: tokens the sequence generated before (a failover's), replayed into the grammar."""
        self._gate = GrammarGate(model.vocab, params.grammar, model.is_end_of_generation, params.grammar_trigger)
        try:
            self._gate.replay(generated)
        except Exception:
            self._gate.close()
            raise
        self._candidates = TokenCandidates(model.vocab_size)
        self._params = params
        self._penalised = params.repeat_penalty != 1.0
        self._temperature_only = params.top_k == 0 and params.top_p >= 1.0 and params.min_p == 0.0
        self._rng = np.random.default_rng(params.seed)
        self._end_token = model.end_token

    def choose(self, context: LlamaContext, batch_index: int, chain: Any) -> int:
        """The chain's choice under the grammar, which accepts it; the caller has the chain accept it."""
        if self._penalised:  # the chain must not remember a draw the grammar may refuse
            token = self._candidates.choose(context, batch_index, chain)
        else:  # llama.cpp's own call: the chain's accept of a refused draw changes nothing
            token = int(llama_cpp.llama_sampler_sample(chain, context.handle, batch_index))
        if not self._gate.allows(token):
            token = self._redraw(context, batch_index, chain)
            if not self._gate.allows(token):
                # The grammar allows no token of this vocabulary here: end the sequence, not the worker.
                log.warning("the grammar allows no token of this model's vocabulary here: ending the sequence")
                token = self._end_token
        self._gate.accept(token)
        return token

    def _redraw(self, context: LlamaContext, batch_index: int, chain: Any) -> int:
        params, grammar, candidates = self._params, self._gate.handle, self._candidates
        found: int | None = None
        if self._penalised:
            found = None  # the whole vocabulary, penalised as llama.cpp would
        elif params.greedy:
            found = candidates.best_allowed(context, batch_index, grammar)
        elif self._temperature_only:
            found = self._rejection_draw(context, batch_index)
        else:
            found = candidates.sample_among_likeliest(
                context, batch_index, grammar, chain, params.temperature, enough_allowed=params.top_k
            )
        return found if found is not None else candidates.choose(context, batch_index, grammar, chain)

    def _rejection_draw(self, context: LlamaContext, batch_index: int) -> int | None:
        refused: set[int] = set()
        for token in self._candidates.draws(context, batch_index, self._params.temperature, self._rng, self.REDRAWS):
            if token in refused:
                continue
            if self._gate.allows(token):
                return token
            refused.add(token)
        return None

    def close(self) -> None:
        self._gate.close()
