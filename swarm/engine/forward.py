"""Forward: what advances a step of many sequences and samples their next tokens; WholeModel does it locally.

BatchEngine schedules sequences (slots, prefix reuse, chunked prefill, stop strings) and
hands each step to a Forward: the whole model on this PC, or the first stage of a
pipeline whose later stages run on other PCs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from functools import partial
from time import perf_counter
from typing import Protocol, runtime_checkable

from swarm.engine.llama_adapter import LlamaContext, LlamaModel, Sampler, TokenBatch
from swarm.engine.speculation.step_cost import StepCost
from swarm.engine.speculation.verification import verify
from swarm.shared.stage_messages import Sampled, StageWork
from swarm.shared.types import SamplingParams


class Forward(Protocol):
    @property
    def batch_capacity(self) -> int: ...

    @property
    def context_per_slot(self) -> int: ...

    def open(
        self,
        slot: int,
        sampling: SamplingParams,
        prompt: list[int],
        keep: int,
        traceparent: str = "",
        generated: int = 0,
    ) -> int:
        """Starts a sequence on a slot whose cache holds `keep` prompt tokens; returns how many it really kept.

        traceparent: the request's trace ("" when off), for whatever computes its steps elsewhere.
        generated: how many of prompt's last tokens the sequence generated before (a failover's resume tokens)."""
        ...

    @property
    def max_in_flight(self) -> int:
        """How many steps may be sent before the oldest one's tokens are received."""
        ...

    def decode_groups(self, sessions: int) -> int:
        """Into how many steps in flight `sessions` decoding sessions are split (at most max_in_flight)."""
        ...

    def send(self, work: list[StageWork]) -> None:
        """Starts a step: every row decodes after the rows of the steps sent before it."""
        ...

    def receive(self) -> list[Sampled | None]:
        """The oldest step's sampled token of each work item that asked for one (None for the others)."""
        ...

    def discard(self) -> None:
        """Forgets every step in flight (after a failure): their tokens never come."""
        ...

    def release(self, slot: int, keep_cache: bool) -> None: ...

    def close(self) -> None: ...


class StepInterrupted(Exception):
    """Raised by an Interruptible's send when interrupt() cut the step short: none of it happened."""


@runtime_checkable
class Interruptible(Protocol):
    """A Forward whose step under way another thread can cut short, so that a new request goes first."""

    def interrupt(self) -> None:
        """Any thread: the step under way (or else the next) raises StepInterrupted, unless the last one did."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """A Forward that verifies proposals: the last `proposed[i]` tokens of work item i are a proposal, and
    each item's decided tokens come back (the accepted prefix, then the model's own token)."""

    step_cost: StepCost  # of its decode steps, by rows with logits: proposals are sized by it

    def send(self, work: list[StageWork], proposed: Sequence[int] = ()) -> None: ...

    def receive_decided(self) -> list[tuple[Sampled, ...] | None]: ...


class WholeModel:
    """The whole model in one llama.cpp context, a sampler chain per slot."""

    def __init__(self, model: LlamaModel, slots: int, context_per_slot: int, batch_size: int, threads: int) -> None:
        self._model = model
        self._context = LlamaContext(model, slots, context_per_slot, batch_size, threads)
        self._batch = TokenBatch(self._context.batch_size)
        self._samplers: dict[int, Sampler] = {}
        self._done: deque[list[tuple[Sampled, ...] | None]] = deque()
        self.step_cost = StepCost()  # of the decode steps run here: speculation sizes proposals by it
        self._interrupted = False  # the last step was: the next one runs whole, so the running ones advance

    @property
    def batch_capacity(self) -> int:
        return self._context.batch_size

    @property
    def context_per_slot(self) -> int:
        return self._context.context_per_slot

    def open(
        self,
        slot: int,
        sampling: SamplingParams,
        prompt: list[int],
        keep: int,
        traceparent: str = "",
        generated: int = 0,
    ) -> int:
        sampler = Sampler(sampling, prompt, self._model, generated)  # may raise: nothing changed yet
        if keep == 0 or not self._context.forget(slot, keep):
            self._context.forget(slot)
            keep = 0
        self._samplers[slot] = sampler
        return keep

    @property
    def max_in_flight(self) -> int:
        return 1  # one context computes one step at a time: nothing would overlap

    def decode_groups(self, sessions: int) -> int:
        return 1

    def send(self, work: list[StageWork], proposed: Sequence[int] = ()) -> None:
        """proposed: for each work item, how many of its last tokens are a proposal to verify (none if empty).

        A proposal's rows all get logits; the sampler decides token by token until one differs from the
        proposal, and the KV cells of the rows after that are removed at once. Raises StepInterrupted when
        interrupt() cut the step short: nothing was decoded or sampled, so it can be sent again."""
        # Sampled at once, so a sequence released before its tokens are received needs no sampler then.
        batch = self._batch
        batch.clear()
        first_rows = []
        for i, w in enumerate(work):
            extra = proposed[i] if proposed else 0
            last = len(w.tokens) - 1
            for k, token in enumerate(w.tokens):
                index = batch.add(token, w.position + k, w.session, w.sample and k >= last - extra)
            first_rows.append(index - extra)
        started = perf_counter()
        if not self._context.decode(batch, interruptible=not self._interrupted):
            self._interrupted = True
            raise StepInterrupted
        self._interrupted = False
        decided: list[tuple[Sampled, ...] | None] = []
        for i, (w, first) in enumerate(zip(work, first_rows, strict=True)):
            if not w.sample:
                decided.append(None)
                continue
            extra = proposed[i] if proposed else 0
            draw = partial(self._samplers[w.session].draw, self._context)
            tokens = verify(draw, first, w.tokens[len(w.tokens) - extra :])
            rejected_from = w.position + len(w.tokens) - extra + len(tokens) - 1
            if len(tokens) <= extra and not self._context.forget(w.session, rejected_from):
                raise RuntimeError("this model's cache cannot drop rejected proposals: run it with --speculate off")
            decided.append(tokens)
        if batch.outputs == batch.size:  # a decode step (no prompt rows): it tells what a row costs
            self.step_cost.record(batch.size, perf_counter() - started)
        self._done.append(decided)

    def interrupt(self) -> None:
        self._context.interrupt()

    def receive(self) -> list[Sampled | None]:
        return [tokens[0] if tokens else None for tokens in self.receive_decided()]

    def receive_decided(self) -> list[tuple[Sampled, ...] | None]:
        """The oldest step's decided tokens per work item: the first, then those of an accepted proposal."""
        return self._done.popleft()

    def cached_positions(self, slot: int) -> int:
        """How many positions the slot's KV cells cover (the engine's record of them must say the same)."""
        return self._context.positions(slot)

    def discard(self) -> None:
        self._done.clear()

    @property
    def threads(self) -> int:
        return self._context.threads

    def set_threads(self, threads: int) -> None:
        self._context.set_threads(threads)

    def release(self, slot: int, keep_cache: bool) -> None:
        sampler = self._samplers.pop(slot, None)
        if sampler is not None:
            sampler.close()
        if not keep_cache:
            self._context.forget(slot)

    def close(self) -> None:
        for slot in list(self._samplers):
            self.release(slot, keep_cache=True)
        self._batch.close()
        self._context.close()
