"""Frozen, typed messages that travel inside a process (protobuf only at the wire)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

# A worker as the registry knows it, and a PC offering itself to the stage planner. A worker that
# joined with `--auto` registers under its node's id (swarm.shared.plan_messages.planned_node).
WorkerId = NewType("WorkerId", str)
NodeId = NewType("NodeId", str)


class FinishReason(StrEnum):
    STOP = "stop"  # end-of-generation token or a stop string
    LENGTH = "length"  # max_tokens reached or the sequence's context is full
    CANCELLED = "cancelled"


class WorkerState(StrEnum):
    """A registered worker's state, as `swarm status` shows it."""

    UP = "up"  # heartbeating and taking requests
    DRAINING = "draining"  # heartbeating, finishing its work, taking nothing new
    DOWN = "down"  # its heartbeat expired (or a call to it failed) until its next heartbeat


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k
    seed: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0  # 1 disables the penalty
    grammar: str = ""  # GBNF (root rule `root`) the output must match; "" leaves it unconstrained
    # Literal text from whose first appearance in the output on the grammar holds (free text before it:
    # a tool call the model may or may not begin); "" holds the grammar from the first token.
    grammar_trigger: str = ""
    logprobs: bool = False  # report each sampled token's log-probability
    top_logprobs: int = 0  # and the likeliest tokens' at its place (needs logprobs)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class RawRequest:
    """The client's fields exactly as sent; None where an optional field was unset."""

    model: str = ""
    prompt: str = ""
    max_tokens: int = 0
    temperature: float | None = None
    top_p: float | None = None
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    request_id: str = ""
    min_p: float | None = None
    repeat_penalty: float | None = None
    resume_after_tokens: int = 0
    grammar: str = ""  # GBNF, given as such or made from an OpenAI response_format
    grammar_trigger: str = ""  # see SamplingParams.grammar_trigger
    logprobs: bool = False
    top_logprobs: int = 0
    speculate: bool | None = None  # False: no speculative decoding for it; None: the worker's setting


@dataclass(frozen=True)
class GenerationRequest:
    """A validated request: what the coordinator queues and a worker runs."""

    request_id: str
    model: str
    prompt: str
    max_tokens: int
    sampling: SamplingParams
    stop: tuple[str, ...] = ()
    # Failover: tokens a failed worker already generated and delivered; the next worker
    # prefills them after the prompt and emits only what follows.
    resume_tokens: tuple[int, ...] = ()
    # A digest of the client's fields (coordinator.request_identity): a retry under this id must match it.
    fingerprint: str = ""
    # The W3C traceparent of the span that accepted it ("" untraced): its later hops' spans are its children.
    traceparent: str = ""
    # How long its worker may hold pieces before sending them: 0 for a client reading token by token;
    # a client that reads only the whole answer lets them gather, which costs every hop fewer messages.
    piece_interval_s: float = 0.0
    # Whose it is, for fair queuing and usage: the caller's name ("" without keys), its priority class
    # (0 interactive, 1 batch, higher later) and its weight (its share of turns within the class).
    tenant: str = ""
    priority: int = 0
    weight: float = 1.0
    # False: the worker verifies no proposals for it (speculative decoding off for this request).
    speculate: bool = True


@dataclass(frozen=True)
class TokenLogprob:
    """A token's log-probability at its place (log-softmax of the raw logits), and the likeliest tokens' there."""

    token: int
    logprob: float
    text: bytes = b""  # the token's bytes; filled by the worker that detokenizes
    top: tuple[TokenLogprob, ...] = ()  # likeliest first


@dataclass(frozen=True)
class TextPiece:
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] = ()  # when asked for: one per token of token_ids


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    worker_id: str = ""
    cached_prompt_tokens: int = 0
    proposed_tokens: int = 0  # speculation: tokens proposed for verification
    accepted_tokens: int = 0  # of them, those the model's own choices confirmed


GenerationEvent = TextPiece | Finished


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker is; fixed for its lifetime."""

    worker_id: WorkerId
    address: str
    model: str
    context_length: int
    slots: int
    threads: int
    hostname: str = ""
    model_bytes: int = 0
    stage_index: int = 0  # of stage_count; 0 of 0 is the whole model
    stage_count: int = 0
    layer_start: int = 0
    layer_end: int = 0
    chat_template: str = ""  # the GGUF's tokenizer.chat_template (Jinja); empty when it has none
    draft_for: str = ""  # a draft PC: the model whose workers it proposes tokens to; it takes no requests
    vocab_fingerprint: str = ""  # see swarm.shared.vocab_fingerprint; empty from workers that predate it

    @property
    def takes_requests(self) -> bool:
        """Whole models and the first stage of a pipeline; later stages serve the stage before them, and a
        draft PC the workers it is paired with."""
        return self.stage_index == 0 and not self.draft_for

    @property
    def role(self) -> str:
        if self.draft_for:
            return f"draft for {self.draft_for}"
        if self.stage_count == 0:
            return "whole"
        return f"stage {self.stage_index + 1}/{self.stage_count} L{self.layer_start}-{self.layer_end - 1}"


@dataclass(frozen=True)
class WorkerLoad:
    """How a worker is doing; sent with every heartbeat."""

    slots_busy: int = 0
    tokens_per_second: float = 0.0
    rss_bytes: int = 0
    ram_available_bytes: int = 0
    tokens_generated: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    away: str = ""  # why its owner lets it take no new work now ("outside its hours"); empty: it takes work
    # For cost per token (coordinator.usage): seconds it had at least one sequence running since it started,
    # and what its owner said it draws beyond idle while busy (--watts) and costs per busy hour (--cost-per-hour).
    busy_seconds: float = 0.0
    watts: float = 0.0
    cost_per_hour: float = 0.0


@dataclass(frozen=True)
class WorkerView:
    """A worker as the coordinator sees it when routing: facts, load and liveness."""

    info: WorkerInfo
    load: WorkerLoad = field(default_factory=WorkerLoad)
    state: WorkerState = WorkerState.UP
    heartbeat_age_s: float = -1.0
    inflight: int = 0  # requests this coordinator has running on it
    assigned: int = 0  # requests this coordinator has given it so far, to spread ties evenly

    @property
    def up(self) -> bool:
        """Its heartbeat is alive (draining workers are up: they finish what they run)."""
        return self.state is not WorkerState.DOWN

    @property
    def draining(self) -> bool:
        """Finishing its work before it leaves: takes no new requests."""
        return self.state is WorkerState.DRAINING

    @property
    def shown_state(self) -> str:
        """Its state for people: an up worker its owner keeps from new work says why."""
        return self.load.away if self.state is WorkerState.UP and self.load.away else self.state.value

    @property
    def free_slots(self) -> int:
        return max(0, self.info.slots - max(self.inflight, 0))


@dataclass(frozen=True)
class ModelSummary:
    name: str
    context_length: int
    workers_up: int
    is_default: bool
    state: str = ""  # loaded, loading or available (a planned model); "" where the coordinator plans none
    pinned: bool = False
    workers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SwarmStatus:
    workers: list[WorkerView]
    queue_depth: int
    default_model: str
