"""StageExecutor: one pipeline stage's layers; every session's rows advance in one llama_decode per step.

A session keeps the same sequence id (its slot) on every stage of a pipeline, so the
KV cache of each stage holds exactly its own layers of that session. The first stage
takes tokens, later stages take the previous stage's hidden states, and the last
stage samples the next token with the session's own llama.cpp sampler chain (or, for
a speculating session, verifies the proposed tokens its last rows carry).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import numpy as np

from swarm.engine.llama_adapter import EmbeddingBatch, LlamaContext, LlamaModel, Sampler, TokenBatch
from swarm.engine.speculation.verification import verify
from swarm.shared.stage_messages import PipelineStep, StageResult, StageWork
from swarm.shared.types import SamplingParams


class CacheLost(RuntimeError):
    """A session was opened keeping a prefix this stage does not hold (any more)."""


class StageExecutor:
    def __init__(
        self,
        model: LlamaModel,
        *,
        first: bool,
        last: bool,
        slots: int,
        context_per_slot: int,
        threads: int,
        batch_size: int = 512,
    ) -> None:
        if first and last:
            raise ValueError("a stage that is both first and last is a whole model: use BatchEngine")
        self.model = model
        self.first, self.last = first, last
        self._context = LlamaContext(model, slots, context_per_slot, batch_size, threads, capture_hidden=not last)
        capacity = self._context.batch_size
        self.context_per_slot = self._context.context_per_slot
        self._tokens = TokenBatch(capacity) if first else None
        self._rows = None if first else EmbeddingBatch(capacity, model.n_embd)
        self._samplers: dict[int, Sampler] = {}
        self.slots = slots

    @property
    def batch_capacity(self) -> int:
        return self._context.batch_size

    def open(
        self,
        session: int,
        sampling: SamplingParams | None = None,
        keep: int = 0,
        history: list[int] | None = None,
        generated: int = 0,
    ) -> int:
        """Starts a session on a slot, keeping its first `keep` cached positions (a shared prefix) where the
        cache can cut there; returns how many it kept (keep or 0)."""
        if not 0 <= session < self.slots:
            raise ValueError(f"session {session} is outside the stage's {self.slots} slots")
        if keep == 0 or not self._context.forget(session, keep):
            self._context.forget(session)
            keep = 0
        if self.last:
            self.close(session)
            self._samplers[session] = Sampler(sampling or SamplingParams(), history or [], self.model, generated)
        return keep

    def close(self, session: int) -> None:
        sampler = self._samplers.pop(session, None)
        if sampler is not None:
            sampler.close()

    def apply(self, step: PipelineStep) -> list[StageResult]:
        """Releases ended sessions, opens new ones (perhaps on the same slots), then runs the rows."""
        for session in step.releases:
            self.close(session)
        for opened in step.opens:
            kept = self.open(opened.session, opened.sampling, opened.keep, list(opened.prompt), opened.generated)
            if kept != opened.keep:
                raise CacheLost(f"session {opened.session}: this stage's cache cannot keep {opened.keep} positions")
        return self.step(list(step.work)) if step.work else []

    def step(self, work: list[StageWork]) -> list[StageResult]:
        """Runs every session's rows through this stage's layers in one decode."""
        for w in work:
            if w.trim:
                self.trim(w.session, w.position)
        starts = self._fill(work)
        self._context.decode(self._batch)
        if not self.last:
            hidden = self._context.hidden_states()
            return [
                StageResult(w.session, hidden=np.ascontiguousarray(hidden[s : s + w.rows]))
                for w, s in zip(work, starts, strict=True)
            ]
        return [self._decide(w, s) if w.sample else StageResult(w.session) for w, s in zip(work, starts, strict=True)]

    def _decide(self, work: StageWork, start: int) -> StageResult:
        """The last stage's tokens for a session: the next one, or those a proposal's verification decides (as
        the whole model does), whose rejected rows then leave this stage's cache."""
        draw = partial(self._samplers[work.session].draw, self._context)
        first_row = start + work.rows - 1 - len(work.proposal)
        decided = verify(draw, first_row, work.proposal)
        if len(decided) <= len(work.proposal):
            self.trim(work.session, work.position + work.rows - len(work.proposal) + len(decided) - 1)
        first = decided[0]
        return StageResult(work.session, token=first.token, logprob=first.logprob, following=decided[1:])

    def trim(self, session: int, position: int) -> None:
        """Drops the session's cells from position on (a proposal's rejected rows)."""
        if not self._context.forget(session, position):
            raise RuntimeError("this model's cache cannot drop rejected proposals: run it with --speculate off")

    def cached_positions(self, session: int) -> int:
        """How many positions the session's KV cells cover here."""
        return self._context.positions(session)

    @property
    def _batch(self) -> TokenBatch | EmbeddingBatch:
        batch = self._tokens if self._tokens is not None else self._rows
        if batch is None:
            raise RuntimeError("stage has no batch")
        return batch

    def _fill(self, work: list[StageWork]) -> list[int]:
        """Puts the rows into the batch; returns where each session's rows start (outputs for non-final
        stages are numbered like rows, since every row is an output there)."""
        starts = []
        if self._tokens is not None:
            self._tokens.clear()
            for w in work:
                starts.append(self._tokens.size)
                for k, token in enumerate(w.tokens):
                    self._tokens.add(token, w.position + k, w.session, True)
            return starts
        assert self._rows is not None  # a later stage always has an embedding batch
        self._rows.clear()
        for w in work:
            if w.hidden is None:
                raise ValueError(f"session {w.session}: a later stage needs hidden states, not tokens")
            outputs: Literal["all", "none"] | int = "all"
            if self.last:  # logits for the next token's row and a proposal's rows after it
                outputs = 1 + len(w.proposal) if w.sample else "none"
            starts.append(self._rows.add_rows(w.hidden, w.position, w.session, outputs))
        return starts

    def close_all(self) -> None:
        for session in list(self._samplers):
            self.close(session)
        if self._tokens is not None:
            self._tokens.close()
        if self._rows is not None:
            self._rows.close()
        self._context.close()
