"""Forward: what advances a step of many sequences and samples their next tokens; WholeModel does it locally.

BatchEngine schedules sequences (slots, prefix reuse, chunked prefill, stop strings) and
hands each step to a Forward: the whole model on this PC, or the first stage of a
pipeline whose later stages run on other PCs.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from swarm.engine.llama_adapter import LlamaContext, LlamaModel, Sampler, TokenBatch
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


class WholeModel:
    """The whole model in one llama.cpp context, a sampler chain per slot."""

    def __init__(self, model: LlamaModel, slots: int, context_per_slot: int, batch_size: int, threads: int) -> None:
        self._model = model
        self._context = LlamaContext(model, slots, context_per_slot, batch_size, threads)
        self._batch = TokenBatch(self._context.batch_size)
        self._samplers: dict[int, Sampler] = {}
        self._done: deque[list[Sampled | None]] = deque()

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

    def send(self, work: list[StageWork]) -> None:
        # Sampled at once, so a sequence released before its tokens are received needs no sampler then.
        batch = self._batch
        batch.clear()
        last_rows = []
        for w in work:
            for k, token in enumerate(w.tokens):
                index = batch.add(token, w.position + k, w.session, w.sample and k == len(w.tokens) - 1)
            last_rows.append(index)
        self._context.decode(batch)
        self._done.append(
            [
                self._samplers[w.session].draw(self._context, row) if w.sample else None
                for w, row in zip(work, last_rows, strict=True)
            ]
        )

    def receive(self) -> list[Sampled | None]:
        return self._done.popleft()

    def discard(self) -> None:
        self._done.clear()

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
