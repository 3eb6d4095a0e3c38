"""Sequence: one request's life inside the engine, from prompt tokens to its last sampled token."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from opentelemetry.context import Context

from swarm.engine.speculation import PromptLookup
from swarm.engine.speculation.budget import Acceptance
from swarm.engine.text_stream import TextStream
from swarm.shared.errors import SwarmError
from swarm.shared.types import GenerationEvent, GenerationRequest, TokenLogprob

# Called from the engine thread; must be thread-safe and must not block.
EmitFn = Callable[[GenerationEvent | SwarmError], None]


@dataclass
class Sequence:
    request: GenerationRequest
    emit: EmitFn
    text: TextStream
    prompt: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet in the KV cache
    replay: list[int] = field(default_factory=list)  # a failover's resume tokens not yet decoded again
    position: int = 0  # tokens of this sequence in the KV cache
    next_token: int = -1  # sampled, to be decoded next step
    awaiting_token: bool = False  # a step that samples its next token is in flight: it cannot step again yet
    ready_at: int = 0  # the step whose token made it ready: the longest ready go first
    generated: int = 0  # includes a failover's resume tokens
    prompt_tokens: int = 0  # of the request's own prompt, without resume tokens
    cached_prompt_tokens: int = 0
    trace: Context | None = None  # the span that submitted it (None: tracing is off)
    submitted_ns: int = 0  # time.time_ns() stamps for its trace
    admitted_ns: int = 0
    lookup: PromptLookup | None = None  # its context for proposals; None: it does not speculate
    draft_key: str = ""  # its name on the draft PC's stream; "": no draft proposes to it
    acceptance: Acceptance = field(default_factory=Acceptance)
    proposal_in_flight: int = 0  # proposed tokens in its step in flight, not yet verified
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of tokens fed to `text` but not yet released
    prefill_alone: bool = False  # its tenant's first here while another's ran: prefilled in steps of its own

    def take_logprobs(self, count: int) -> tuple[TokenLogprob, ...]:
        """The log-probabilities of the next `count` tokens released ((): the request asked for none)."""
        taken, self.logprobs = self.logprobs[:count], self.logprobs[count:]
        return tuple(taken)

    @property
    def prefilling(self) -> bool:
        return bool(self.pending)


def first_of_its_tenant(running: AbstractSet[str], tenant: str) -> bool:
    """Whether a sequence of `tenant` joining sequences of the tenants `running` is its tenant's only one
    while another tenant's run.

    Its prefill then goes in steps without their decode rows: beside them its first step took several
    times longer than alone (each decode row computes the output head, 262,144 rows on Gemma 3)."""
    return bool(running) and tenant not in running


@dataclass
class Slot:
    """One llama.cpp sequence id. After a request ends, its tokens stay cached for prefix reuse."""

    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV cells this slot holds
    sequence: Sequence | None = None
    last_used: int = 0


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def choose_slot(slots: list[Slot], prompt: list[int]) -> tuple[Slot, int] | None:
    """The free slot whose cache shares the longest prefix with prompt (ties: least recently used).

    Returns the slot and how many prompt tokens can be kept; at least one prompt token is
    always left to decode, since the first sampled token needs fresh logits.
    """
    free = [s for s in slots if s.sequence is None]
    if not free:
        return None
    scored = [(common_prefix_length(s.cached, prompt), s) for s in free]
    reuse, slot = max(scored, key=lambda pair: (pair[0], -pair[1].last_used))
    return slot, min(reuse, len(prompt) - 1)
