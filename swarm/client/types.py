"""What the clients take and give: generation options, a finished completion, a call error."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import grpc

from swarm.shared.backoff import backoff_delays
from swarm.shared.types import Finished, GenerationEvent, TextPiece
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import event_from_wire

# Codes a retry with the same request id may cure: the coordinator restarted or is overloaded.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


class SwarmCallError(RuntimeError):
    """A call the swarm refused or could not finish; `code` is the gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


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

    def to_wire(self, prompt: str, request_id: str) -> pb.GenerateRequest:
        msg = pb.GenerateRequest(
            model=self.model,
            prompt=prompt,
            max_tokens=self.max_tokens,
            top_k=self.top_k,
            stop=list(self.stop),
            request_id=request_id,
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

    The request id stays the same across retries, so the coordinator attaches the retry to
    the request it still holds in Redis instead of running it twice.
    """

    def __init__(self, request: pb.GenerateRequest, retries: int) -> None:
        self.request = request
        self._retries = retries
        self._attempt = 0
        self._delays = backoff_delays()

    def received(self, message: pb.GenerateResponse) -> GenerationEvent:
        event = event_from_wire(message)
        if isinstance(event, TextPiece):
            self.request.resume_after_tokens += len(event.token_ids)
        return event

    def retry_delay(self, code: grpc.StatusCode, details: str) -> float:
        """Seconds to wait before the next attempt; raises SwarmCallError when it may not retry."""
        self._attempt += 1
        if code not in RETRYABLE or self._attempt > self._retries:
            raise SwarmCallError(code, details)
        return next(self._delays)
