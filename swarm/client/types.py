"""What the clients take and give: generation options, a finished completion, a call error."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import grpc

from swarm.client.failover import CallAttempts, SwarmCallError
from swarm.shared.types import Finished, GenerationEvent, TextPiece
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import event_from_wire

__all__ = ["Completion", "GenerateOptions", "ResumableRequest", "SwarmCallError"]


@dataclass(frozen=True)
class GenerateOptions:
    model: str = ""
    max_tokens: int = 0
    temperature: float | None = None
    top_p: float | None = None
    top_k: int = 0
    seed: int | None = None
    stop: Sequence[str] = ()
    request_id: str = ""
    min_p: float | None = None
    repeat_penalty: float | None = None
    grammar: str = ""  # GBNF (root rule `root`) the output must match
    grammar_trigger: str = ""  # with a grammar: it holds only from this text's first appearance in the output on
    logprobs: bool = False  # each TextPiece carries its tokens' log-probabilities
    top_logprobs: int = 0  # and the likeliest tokens' (0-20; needs logprobs)
    speculate: bool | None = None  # False: no speculative decoding for this request (the same text, maybe slower)

    def to_wire(self, prompt: str, request_id: str) -> pb.GenerateRequest:
        msg = pb.GenerateRequest(
            model=self.model,
            prompt=prompt,
            max_tokens=self.max_tokens,
            top_k=self.top_k,
            stop=list(self.stop),
            request_id=request_id,
            grammar=self.grammar,
            grammar_trigger=self.grammar_trigger,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs,
        )
        if self.temperature is not None:
            msg.temperature = self.temperature
        if self.top_p is not None:
            msg.top_p = self.top_p
        if self.seed is not None:
            msg.seed = self.seed
        if self.min_p is not None:
            msg.min_p = self.min_p
        if self.repeat_penalty is not None:
            msg.repeat_penalty = self.repeat_penalty
        if self.speculate is not None:
            msg.speculate = self.speculate
        return msg


@dataclass(frozen=True)
class Completion:
    request_id: str
    text: str
    token_ids: tuple[int, ...]
    finished: Finished
    pieces: tuple[TextPiece, ...] = field(default=(), repr=False)

    @classmethod
    def from_events(cls, request_id: str, events: Iterable[GenerationEvent]) -> Completion:
        pieces = [e for e in events if isinstance(e, TextPiece)]
        finals = [e for e in events if isinstance(e, Finished)]
        if not finals:
            raise SwarmCallError(grpc.StatusCode.INTERNAL, "stream ended without a finish message")
        return cls(
            request_id,
            "".join(p.text for p in pieces),
            tuple(t for p in pieces for t in p.token_ids),
            finals[-1],
            tuple(pieces),
        )


class ResumableRequest:
    """A Generate request and how far its stream got: a retry resumes after the tokens received.

    The request id stays the same across retries and coordinators, so whichever coordinator
    the retry reaches attaches it to the request kept in Redis instead of running it twice.
    """

    def __init__(self, request: pb.GenerateRequest, attempts: CallAttempts) -> None:
        self.request = request
        self.attempts = attempts
        # The whole answer arrived: a failure now (its coordinator died before the stream's close reached
        # this client) ends the call, not a retry, which would deliver the kept result's end a second time.
        self.finished = False

    def received(self, message: pb.GenerateResponse) -> GenerationEvent:
        event = event_from_wire(message)
        self.attempts.progressed()
        if isinstance(event, TextPiece):
            self.request.resume_after_tokens += len(event.token_ids)
        self.finished = isinstance(event, Finished)
        return event
