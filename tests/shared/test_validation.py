"""Request validation names the offending field and fills defaults."""

import math

import pytest

from swarm.coordinator.batch.runner import batch_request_id
from swarm.shared.types import GenerationRequest, RawRequest, SamplingParams
from swarm.shared.validation import (
    InvalidRequest,
    RequestLimits,
    check_client_request_id,
    check_fits_context,
    check_run,
    validate_request,
)

LIMITS = RequestLimits()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (RawRequest(prompt=""), "prompt"),
        (RawRequest(prompt="x" * (LIMITS.max_prompt_bytes + 1)), "prompt"),
        (RawRequest(prompt="hi", max_tokens=-1), "max_tokens"),
        (RawRequest(prompt="hi", temperature=-0.1), "temperature"),
        (RawRequest(prompt="hi", temperature=math.nan), "temperature"),
        (RawRequest(prompt="hi", top_p=0.0), "top_p"),
        (RawRequest(prompt="hi", top_p=1.5), "top_p"),
        (RawRequest(prompt="hi", top_k=-3), "top_k"),
        (RawRequest(prompt="hi", stop=("",)), "stop"),
        (RawRequest(prompt="hi", stop=tuple("abcdefghij")), "stop"),
        (RawRequest(prompt="hi", request_id="has space"), "request_id"),
        (RawRequest(prompt="hi", min_p=1.0), "min_p"),
        (RawRequest(prompt="hi", repeat_penalty=0.0), "repeat_penalty"),
        # Past the wire's types (uint32, uint64, float32): nothing could carry them on to a worker.
        (RawRequest(prompt="hi", max_tokens=2**32), "max_tokens"),
        (RawRequest(prompt="hi", top_k=2**40), "top_k"),
        (RawRequest(prompt="hi", seed=2**64), "seed"),
        (RawRequest(prompt="hi", seed=-1), "seed"),
        (RawRequest(prompt="hi", resume_after_tokens=2**32), "resume_after_tokens"),
        (RawRequest(prompt="hi", resume_after_tokens=-1), "resume_after_tokens"),
        (RawRequest(prompt="hi", temperature=1e39), "temperature"),
        (RawRequest(prompt="hi", top_p=1e-50), "top_p"),
        (RawRequest(prompt="hi", min_p=0.99999999), "min_p"),
        (RawRequest(prompt="hi", repeat_penalty=math.inf), "repeat_penalty"),
    ],
)
def test_bad_fields_are_named(raw: RawRequest, field: str) -> None:
    with pytest.raises(InvalidRequest) as excinfo:
        validate_request(raw, LIMITS)
    assert excinfo.value.field == field
    assert str(excinfo.value).startswith(field)


def test_defaults_are_filled() -> None:
    request = validate_request(RawRequest(prompt="hi"), LIMITS)
    assert request.max_tokens == LIMITS.default_max_tokens
    assert request.sampling.temperature == LIMITS.default_temperature
    assert request.sampling.top_p == 1.0
    assert request.request_id.startswith("req-")


def test_explicit_zero_temperature_is_greedy() -> None:
    request = validate_request(RawRequest(prompt="hi", temperature=0.0, seed=5), LIMITS)
    assert request.sampling.greedy
    assert request.sampling.seed == 5


def test_max_tokens_above_context_is_rejected() -> None:
    request = validate_request(RawRequest(prompt="hi", max_tokens=600, model="m"), LIMITS)
    with pytest.raises(InvalidRequest, match="max_tokens"):
        check_fits_context(request, 512)
    check_fits_context(request, 600)


def test_client_request_ids_in_the_batch_runners_namespace_are_refused_naming_the_prefix() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_client_request_id(batch_request_id("job1", 0))
    assert caught.value.field == "request_id" and "'batch-'" in str(caught.value)
    for ordinary in ("", "req-1", "my-batch-1", "Batch-1"):
        check_client_request_id(ordinary)
    # The runner's own lines are not client input: they pass the request checks.
    assert validate_request(RawRequest(prompt="hi", request_id=batch_request_id("job1", 0)), LIMITS).request_id


def test_the_widest_wire_values_pass() -> None:
    request = validate_request(RawRequest(prompt="hi", top_k=2**32 - 1, seed=2**64 - 1, min_p=0.9999), LIMITS)
    assert request.sampling.top_k == 2**32 - 1 and request.sampling.seed == 2**64 - 1


@pytest.mark.parametrize(
    ("sampling", "max_tokens", "field"),
    [
        (SamplingParams(temperature=math.nan), 8, "temperature"),
        (SamplingParams(top_p=0.0), 8, "top_p"),
        (SamplingParams(min_p=-1.0), 8, "min_p"),
        (SamplingParams(repeat_penalty=-2.0), 8, "repeat_penalty"),
        (SamplingParams(logprobs=True, top_logprobs=21), 8, "top_logprobs"),
        (SamplingParams(top_logprobs=1), 8, "top_logprobs"),
        (SamplingParams(), 0, "max_tokens"),
        (SamplingParams(), 513, "max_tokens"),
    ],
)
def test_a_worker_refuses_a_run_out_of_range(sampling: SamplingParams, max_tokens: int, field: str) -> None:
    request = GenerationRequest("r", "m", "hi", max_tokens, sampling)
    with pytest.raises(InvalidRequest) as excinfo:
        check_run(request, LIMITS, context_length=512)
    assert excinfo.value.field == field


def test_a_worker_runs_what_a_coordinator_validated() -> None:
    request = validate_request(RawRequest(prompt="hi", max_tokens=512, temperature=10.0, min_p=0.5), LIMITS)
    check_run(request, LIMITS, context_length=512)


def test_a_grammar_trigger_needs_a_grammar_and_stays_short() -> None:
    with pytest.raises(InvalidRequest) as refused:
        validate_request(RawRequest(prompt="hi", grammar_trigger="<tool_call>"), RequestLimits())
    assert refused.value.field == "grammar_trigger"
    with pytest.raises(InvalidRequest) as refused:
        validate_request(RawRequest(prompt="hi", grammar='root ::= "x"', grammar_trigger="<" * 257), RequestLimits())
    assert refused.value.field == "grammar_trigger"
    accepted = validate_request(RawRequest(prompt="hi", grammar='root ::= "x"', grammar_trigger="x"), RequestLimits())
    assert accepted.sampling.grammar_trigger == "x"
