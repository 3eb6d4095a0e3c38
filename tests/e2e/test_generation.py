"""Generation through a real swarm (redis-server, coordinator and worker processes, gRPC on loopback)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import llama_cpp
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from swarm.client import AsyncSwarmClient, SwarmCallError
from swarm.shared.types import Finished, FinishReason
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]


@pytest.fixture
def swarm(make_swarm: MakeSwarm) -> RunningSwarm:
    return make_swarm(workers=1)


def greedy_reference(llm: llama_cpp.Llama, prompt: str, n: int) -> list[int]:
    """Token ids llama-cpp-python itself generates greedily for prompt."""
    llm.reset()
    ids: list[int] = []
    for token in llm.generate(llm.tokenize(prompt.encode(), add_bos=True, special=True), temp=0.0):
        ids.append(token)
        if len(ids) == n:
            return ids
    raise AssertionError("reference generation ended early")


def test_greedy_generation_is_token_identical_to_llama_cpp_python(swarm: RunningSwarm, tiny_model: Path) -> None:
    llm = llama_cpp.Llama(str(tiny_model), n_ctx=512, n_threads=1, verbose=False)
    with swarm.client() as client:
        for prompt in ("Hello world", "The quick brown fox jumps"):
            expected_text = llm.create_completion(prompt, max_tokens=32, temperature=0.0)["choices"][0]["text"]
            got = client.generate(prompt, max_tokens=32, temperature=0.0)
            assert list(got.token_ids) == greedy_reference(llm, prompt, 32)
            assert got.text == expected_text
            assert got.finished.reason == FinishReason.LENGTH
    llm.close()


def test_tokens_stream_as_they_are_produced(make_swarm: MakeSwarm, gemma_model: Path) -> None:
    # The real model decodes at tens of tokens/s, slower than the relay: each token travels
    # on its own. (The tiny model outruns the relay, which then merges pieces.)
    swarm = make_swarm(workers=1, model=gemma_model)
    arrivals: list[float] = []
    events = []
    with swarm.client() as client:
        for event in client.stream("Once upon a time", max_tokens=20, temperature=0.0):
            arrivals.append(time.monotonic())
            events.append(event)
    assert isinstance(events[-1], Finished) and events[-1].completion_tokens == 20
    assert len(arrivals) >= 10  # pieces, not one blob at the end
    assert arrivals[-1] - arrivals[0] > 0.1  # spread over the generation


def test_stop_strings_end_the_text(swarm: RunningSwarm) -> None:
    with swarm.client() as client:
        full = client.generate("Hello world", max_tokens=24, temperature=0.0).text
        stop = full[8:12]
        cut = client.generate("Hello world", max_tokens=24, temperature=0.0, stop=[stop])
    assert cut.text == full[: full.index(stop)]
    assert cut.finished.reason == FinishReason.STOP


def test_async_client_and_list_models(swarm: RunningSwarm) -> None:
    async def scenario() -> None:
        async with AsyncSwarmClient(swarm.address) as client:
            models = await client.list_models()
            assert [(m.name, m.is_default, m.workers_up) for m in models] == [("tiny", True, 1)]
            completion = await client.generate("Hello world", max_tokens=8, temperature=0.0, model="tiny")
            assert completion.finished.completion_tokens == 8

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("fields", "code", "needle"),
    [
        ({"prompt": ""}, grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
        ({"max_tokens": 100_000}, grpc.StatusCode.INVALID_ARGUMENT, "max_tokens"),
        ({"temperature": -1.0}, grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
        ({"top_p": 0.0}, grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
        ({"top_p": 1.5}, grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
        ({"model": "no-such-model"}, grpc.StatusCode.NOT_FOUND, "no-such-model"),
    ],
)
def test_bad_input_gets_a_precise_status(
    swarm: RunningSwarm, fields: dict[str, object], code: grpc.StatusCode, needle: str
) -> None:
    prompt = str(fields.pop("prompt", "Hello"))
    with swarm.client(retries=0) as client, pytest.raises(SwarmCallError) as excinfo:
        client.generate(prompt, **fields)
    assert excinfo.value.code == code
    assert needle in excinfo.value.details
    assert swarm.coordinator.alive


def test_prompt_too_long_for_the_context_is_invalid(swarm: RunningSwarm) -> None:
    with swarm.client(retries=0) as client, pytest.raises(SwarmCallError) as excinfo:
        client.generate("word " * 600, max_tokens=4)
    assert excinfo.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "prompt" in excinfo.value.details
    with swarm.client() as client:  # the worker is still fine
        assert client.generate("Hello", max_tokens=3).finished.completion_tokens == 3


def test_no_worker_for_the_model_is_unavailable_after_a_bounded_wait(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0, coordinator_args=("--no-worker-wait", "1"))
    with swarm.client(retries=0) as client, pytest.raises(SwarmCallError) as excinfo:
        client.generate("Hello", max_tokens=3)
    assert excinfo.value.code == grpc.StatusCode.UNAVAILABLE
    assert "no worker" in excinfo.value.details


def test_health_and_reflection_services_answer(swarm: RunningSwarm) -> None:
    with grpc.insecure_channel(swarm.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="swarm.v1.Inference"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        answer = next(iter(reflection.ServerReflectionInfo(iter([request]), timeout=5)))
        names = {s.name for s in answer.list_services_response.service}
        assert {"swarm.v1.Inference", "grpc.health.v1.Health"} <= names


def test_next_turn_of_a_conversation_goes_to_the_worker_holding_its_prefix(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=2)
    with swarm.client() as client:
        chat = "User: tell me about the quick brown fox and the lazy dog, please.\nAssistant:"
        first = client.generate(chat, max_tokens=16, temperature=0.0)
        previous = first
        for turn in range(3):  # without affinity, ties alternate between the two idle workers
            chat += previous.text + f"\nUser: and then {turn}?\nAssistant:"
            reply = client.generate(chat, max_tokens=16, temperature=0.0)
            assert reply.finished.worker_id == first.finished.worker_id
            # Only the new turn is prefilled: the previous prompt and its reply come from the cache.
            earlier = previous.finished.prompt_tokens + previous.finished.completion_tokens
            assert reply.finished.cached_prompt_tokens >= earlier - 2, (reply.finished, previous.finished)
            previous = reply


def test_http_side_serves_health_status_and_models(swarm: RunningSwarm) -> None:
    def get(path: str) -> dict[str, object]:
        with urllib.request.urlopen(f"http://{swarm.http}{path}", timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    assert get("/healthz") == {"status": "ok"}
    status = get("/status")
    workers = status["workers"]
    assert isinstance(workers, list) and [w["state"] for w in workers] == ["up"]
    assert status["default_model"] == "tiny"
    assert [m["name"] for m in get("/models")["models"]] == ["tiny"]  # type: ignore[index]
