"""Checks a client's request field by field and builds a GenerationRequest, or says which field is wrong."""

from __future__ import annotations

import math
import re
import secrets
import struct
from dataclasses import dataclass

from swarm.shared.types import GenerationRequest, RawRequest, SamplingParams

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# The batch runner's lines carry ids with this prefix, and the queue puts them behind all
# interactive work; a client's own request must not be mistaken for one.
BATCH_REQUEST_ID_PREFIX = "batch-"
# The wire's integer types (proto/swarm.proto): a number beyond them cannot be sent on to a worker.
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
FLOAT32_MAX = 3.4028234663852886e38
# A trigger is a marker such as "<tool_call>", not a text: llama.cpp searches the output for it after each token.
MAX_GRAMMAR_TRIGGER_BYTES = 256
MAX_TOP_LOGPROBS = 20  # OpenAI's limit on the likeliest tokens reported per generated token


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
    max_grammar_bytes: int = 64 * 1024

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
    _check_integer("max_tokens", raw.max_tokens, 0, UINT32_MAX)
    _check_integer("resume_after_tokens", raw.resume_after_tokens, 0, UINT32_MAX)
    if len(raw.stop) > limits.max_stop_strings:
        raise InvalidRequest("stop", f"at most {limits.max_stop_strings} stop strings")
    for stop in raw.stop:
        if not stop or len(stop) > limits.max_stop_chars:
            raise InvalidRequest("stop", f"each stop string must be 1-{limits.max_stop_chars} chars")
    if raw.request_id and not REQUEST_ID_PATTERN.fullmatch(raw.request_id):
        raise InvalidRequest("request_id", "must be 1-64 chars of [A-Za-z0-9._:-]")
    sampling = SamplingParams(
        temperature=limits.default_temperature if raw.temperature is None else raw.temperature,
        top_p=1.0 if raw.top_p is None else raw.top_p,
        top_k=raw.top_k,
        seed=secrets.randbits(32) if raw.seed is None else raw.seed,
        min_p=0.0 if raw.min_p is None else raw.min_p,
        repeat_penalty=1.0 if raw.repeat_penalty is None else raw.repeat_penalty,
        grammar=raw.grammar,
        grammar_trigger=raw.grammar_trigger,
        logprobs=raw.logprobs,
        top_logprobs=raw.top_logprobs,
    )
    check_sampling(sampling, limits)
    return GenerationRequest(
        request_id=raw.request_id or new_request_id(),
        model=raw.model,
        prompt=raw.prompt,
        max_tokens=raw.max_tokens or limits.default_max_tokens,
        sampling=sampling,
        stop=raw.stop,
        speculate=raw.speculate is not False,
    )


def check_sampling(sampling: SamplingParams, limits: RequestLimits) -> None:
    """Each sampling field within its range and its wire type's (a coordinator's and a worker's check alike)."""
    temperature = _float32(sampling.temperature)
    if not math.isfinite(temperature) or temperature < 0:
        raise InvalidRequest("temperature", f"must be >= 0, got {sampling.temperature}")
    if temperature > limits.max_temperature:
        raise InvalidRequest("temperature", f"must be <= {limits.max_temperature}, got {sampling.temperature}")
    top_p = _float32(sampling.top_p)
    if not math.isfinite(top_p) or not 0.0 < top_p <= 1.0:
        raise InvalidRequest("top_p", f"must be in (0, 1], got {sampling.top_p}")
    _check_integer("top_k", sampling.top_k, 0, UINT32_MAX)
    _check_integer("seed", sampling.seed, 0, UINT64_MAX)
    min_p = _float32(sampling.min_p)
    if not math.isfinite(min_p) or not 0.0 <= min_p < 1.0:
        raise InvalidRequest("min_p", f"must be in [0, 1) as a 32-bit float, got {sampling.min_p}")
    repeat_penalty = _float32(sampling.repeat_penalty)
    if not math.isfinite(repeat_penalty) or not 0.0 < repeat_penalty <= 10.0:
        raise InvalidRequest("repeat_penalty", f"must be in (0, 10], got {sampling.repeat_penalty}")
    if len(sampling.grammar.encode()) > limits.max_grammar_bytes:
        raise InvalidRequest("grammar", f"is longer than {limits.max_grammar_bytes} bytes")
    if sampling.grammar_trigger and not sampling.grammar:
        raise InvalidRequest("grammar_trigger", "needs a grammar to trigger")
    if len(sampling.grammar_trigger.encode()) > MAX_GRAMMAR_TRIGGER_BYTES:
        raise InvalidRequest("grammar_trigger", f"is longer than {MAX_GRAMMAR_TRIGGER_BYTES} bytes")
    _check_integer("top_logprobs", sampling.top_logprobs, 0, MAX_TOP_LOGPROBS)
    if sampling.top_logprobs and not sampling.logprobs:
        raise InvalidRequest("top_logprobs", "needs logprobs set to true")


def check_run(request: GenerationRequest, limits: RequestLimits, context_length: int) -> None:
    """What a worker checks of a Run itself: a holder of the join token is not trusted with its numbers either."""
    check_sampling(request.sampling, limits)
    if request.max_tokens < 1:
        raise InvalidRequest("max_tokens", "must be at least 1")
    check_fits_context(request, context_length)
    if len(request.stop) > limits.max_stop_strings:
        raise InvalidRequest("stop", f"at most {limits.max_stop_strings} stop strings")


def _float32(value: float) -> float:
    """value as the wire's float carries it to a worker, so that what passes here passes there too
    (0.99999999 is 1.0 in float32, out of min_p's range); beyond float32's range it is infinite."""
    if math.isfinite(value) and abs(value) > FLOAT32_MAX:
        return math.copysign(math.inf, value)
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _check_integer(field: str, value: int, lowest: int, highest: int) -> None:
    if not lowest <= value <= highest:
        raise InvalidRequest(field, f"must be in [{lowest}, {highest}], got {value}")


def check_fits_context(request: GenerationRequest, context_length: int) -> None:
    if request.max_tokens > context_length:
        raise InvalidRequest(
            "max_tokens",
            f"{request.max_tokens} exceeds model {request.model!r} context of {context_length} tokens",
        )
