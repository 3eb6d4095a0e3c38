"""Checks a client's request field by field and builds a GenerationRequest, or says which field is wrong."""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass

from swarm.shared.types import GenerationRequest, RawRequest, SamplingParams

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# The batch runner's lines carry ids with this prefix, and the queue puts them behind all
# interactive work; a client's own request must not be mistaken for one.
BATCH_REQUEST_ID_PREFIX = "batch-"


class InvalidRequest(ValueError):
    """A request field is out of range; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class RequestLimits:
    default_max_tokens: int = 128
    max_prompt_bytes: int = 256 * 1024
    max_stop_strings: int = 8
    max_stop_chars: int = 64
    default_temperature: float = 0.8
    max_temperature: float = 10.0

    @property
    def max_message_bytes(self) -> int:
        """The largest gRPC message or HTTP body a coordinator reads: a longest prompt even with every character

        JSON-escaped, plus room for the other fields (batch uploads send chunks below it)."""
        return 4 * self.max_prompt_bytes + 64 * 1024


def new_request_id() -> str:
    return "req-" + secrets.token_hex(8)


def check_client_request_id(request_id: str) -> None:
    """Refuses a client's request id in the batch runner's namespace (the runner's own ids are not checked here)."""
    if request_id.startswith(BATCH_REQUEST_ID_PREFIX):
        raise InvalidRequest(
            "request_id", f"must not start with {BATCH_REQUEST_ID_PREFIX!r}, which is reserved for batch job lines"
        )


def validate_request(raw: RawRequest, limits: RequestLimits) -> GenerationRequest:
    """Everything that can be checked without knowing the swarm's workers."""
    if not raw.prompt:
        raise InvalidRequest("prompt", "must not be empty")
    if len(raw.prompt.encode()) > limits.max_prompt_bytes:
        raise InvalidRequest("prompt", f"is longer than {limits.max_prompt_bytes} bytes")
    if raw.max_tokens < 0:
        raise InvalidRequest("max_tokens", "must be at least 1")
    temperature = limits.default_temperature if raw.temperature is None else raw.temperature
    if not math.isfinite(temperature) or temperature < 0:
        raise InvalidRequest("temperature", f"must be >= 0, got {temperature}")
    if temperature > limits.max_temperature:
        raise InvalidRequest("temperature", f"must be <= {limits.max_temperature}, got {temperature}")
    top_p = 1.0 if raw.top_p is None else raw.top_p
    if not math.isfinite(top_p) or not 0.0 < top_p <= 1.0:
        raise InvalidRequest("top_p", f"must be in (0, 1], got {top_p}")
    if raw.top_k < 0:
        raise InvalidRequest("top_k", "must be >= 0")
    if len(raw.stop) > limits.max_stop_strings:
        raise InvalidRequest("stop", f"at most {limits.max_stop_strings} stop strings")
    for stop in raw.stop:
        if not stop or len(stop) > limits.max_stop_chars:
            raise InvalidRequest("stop", f"each stop string must be 1-{limits.max_stop_chars} chars")
    if raw.request_id and not REQUEST_ID_PATTERN.fullmatch(raw.request_id):
        raise InvalidRequest("request_id", "must be 1-64 chars of [A-Za-z0-9._:-]")
    min_p = 0.0 if raw.min_p is None else raw.min_p
    if not math.isfinite(min_p) or not 0.0 <= min_p < 1.0:
        raise InvalidRequest("min_p", f"must be in [0, 1), got {min_p}")
    repeat_penalty = 1.0 if raw.repeat_penalty is None else raw.repeat_penalty
    if not math.isfinite(repeat_penalty) or not 0.0 < repeat_penalty <= 10.0:
        raise InvalidRequest("repeat_penalty", f"must be in (0, 10], got {repeat_penalty}")
    seed = secrets.randbits(32) if raw.seed is None else raw.seed
    return GenerationRequest(
        request_id=raw.request_id or new_request_id(),
        model=raw.model,
        prompt=raw.prompt,
        max_tokens=raw.max_tokens or limits.default_max_tokens,
        sampling=SamplingParams(
            temperature=temperature,
            top_p=top_p,
            top_k=raw.top_k,
            seed=seed,
            min_p=min_p,
            repeat_penalty=repeat_penalty,
        ),
        stop=raw.stop,
    )


def check_fits_context(request: GenerationRequest, context_length: int) -> None:
    if request.max_tokens > context_length:
        raise InvalidRequest(
            "max_tokens",
            f"{request.max_tokens} exceeds model {request.model!r} context of {context_length} tokens",
        )
