"""Malformed and extreme requests against one running coordinator: every answer is a proper status, never a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(300)

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
UINT32 = 2**32 - 1

floats = st.one_of(
    st.none(),
    st.floats(width=32),  # NaN, infinities, subnormals, huge and negative numbers
    st.sampled_from([0.0, -1.0, 0.5, 1.0, 10.0, 10.5, 3.4e38]),
)
prompts = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["", " ", "\x00\x01", "x" * 300_000, "é" * 600_000]),  # too long; larger than a message may be
)
generate_requests = st.builds(
    pb.GenerateRequest,
    model=st.one_of(st.sampled_from(["", "tiny", "no-such-model"]), st.text(max_size=40)),
    prompt=prompts,
    max_tokens=st.one_of(st.integers(0, 4), st.sampled_from([513, 100_000, UINT32])),
    temperature=floats,
    top_p=floats,
    top_k=st.one_of(st.integers(0, 50), st.just(UINT32)),
    seed=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    stop=st.lists(st.text(max_size=80), max_size=10),
    request_id=st.one_of(st.just(""), st.text(max_size=80), st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)),
    min_p=floats,
    repeat_penalty=floats,
    resume_after_tokens=st.one_of(st.integers(0, 4), st.just(UINT32)),
)

# Mostly well-formed requests, so real generation (with odd unicode and stop strings) runs too.
plausible_requests = st.builds(
    pb.GenerateRequest,
    model=st.sampled_from(["", "tiny"]),
    prompt=st.text(min_size=1, max_size=100),
    max_tokens=st.integers(1, 4),
    temperature=st.one_of(st.none(), st.floats(0.0, 2.0, width=32)),
    top_p=st.one_of(st.none(), st.floats(0.125, 1.0, width=32)),
    top_k=st.integers(0, 50),
    seed=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    stop=st.lists(st.text(min_size=1, max_size=8), max_size=3),
)


@pytest.fixture
def fuzzed_swarm(make_swarm: Callable[..., RunningSwarm]) -> Iterator[tuple[RunningSwarm, pb_grpc.InferenceStub]]:
    swarm = make_swarm(workers=1)
    with grpc.insecure_channel(swarm.address) as channel:
        yield swarm, pb_grpc.InferenceStub(channel)


def outcome(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=st.one_of(generate_requests, plausible_requests))
def test_every_answer_is_a_proper_status(
    fuzzed_swarm: tuple[RunningSwarm, pb_grpc.InferenceStub], request: pb.GenerateRequest
) -> None:
    swarm, stub = fuzzed_swarm
    code, details = outcome(lambda: list(stub.Generate(request, timeout=20)))
    event(code.name)  # --hypothesis-show-statistics shows the mix of answers
    assert code in ALLOWED, f"{code.name}: {details}"
    assert code == grpc.StatusCode.OK or details, f"{code.name} without a message"
    assert stub.ListModels(pb.ListModelsRequest(), timeout=10).models
    assert stub.GetStatus(pb.GetStatusRequest(), timeout=10).workers
    assert swarm.coordinator.alive


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(
        [
            "/swarm.v1.Inference/Generate",
            "/swarm.v1.Inference/ListModels",
            "/swarm.v1.Inference/GetStatus",
            "/swarm.v1.Registry/Join",
        ]
    ),
    data=st.one_of(st.binary(max_size=300), st.sampled_from([b"\xff\xff\xff", b"\x12\x02\xff\xfe", b"\x0a\x05ab"])),
)
def test_undecodable_bytes_get_invalid_argument(
    fuzzed_swarm: tuple[RunningSwarm, pb_grpc.InferenceStub], method: str, data: bytes
) -> None:
    swarm, _ = fuzzed_swarm
    with grpc.insecure_channel(swarm.address) as channel:
        if method.endswith("Generate"):
            code, details = outcome(lambda: list(channel.unary_stream(method)(data, timeout=20)))
        else:
            code, details = outcome(lambda: channel.unary_unary(method)(data, timeout=20))
    event(code.name)
    assert code in ALLOWED, f"{code.name}: {details}"
    assert code == grpc.StatusCode.OK or details, f"{code.name} without a message"
    assert swarm.coordinator.alive
