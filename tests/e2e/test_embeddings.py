"""Embeddings through real swarms: /v1/embeddings and gRPC Embed equal llama-cpp-python's embed for the same
model and texts, in OpenAI's shapes (the openai package parses them, float and base64); a worker killed
under a request is retried elsewhere; bad input gets a 400 naming the field."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import openai
import pytest
from llama_cpp import Llama

from swarm.client import AsyncSwarmClient
from swarm.shared.embedding_messages import EmbedResult
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
TEXTS = ["Hello world", "The quick brown fox jumps over the lazy dog", "a", "embeddings " * 20]

pytestmark = pytest.mark.timeout(60)


def post(swarm: RunningSwarm, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url, data = f"http://{swarm.http}/v1/embeddings", json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def reference(model: Path, texts: list[str]) -> np.ndarray:
    llm = Llama(
        str(model),
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,  # the swarm's pooling for a causal LM
        n_ctx=512,
        n_batch=512,
        n_ubatch=512,
        n_seq_max=8,
        n_threads=1,
        verbose=False,
    )
    try:
        return np.array(llm.embed(texts, normalize=True))
    finally:
        llm.close()


def close_to(vectors: Any, expected: np.ndarray) -> None:
    np.testing.assert_allclose(np.array(vectors), expected, atol=1e-3)
    assert min(np.sum(np.array(vectors) * expected, axis=1)) > 0.9999


def test_embeddings_equal_llama_cpp_pythons_over_http_and_grpc(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    expected = reference(swarm.model, TEXTS)
    api = openai.OpenAI(base_url=f"http://{swarm.http}/v1", api_key="unused", max_retries=0, timeout=30)
    answer = api.embeddings.create(model="", input=TEXTS, encoding_format="float")
    assert [d.index for d in answer.data] == list(range(len(TEXTS)))
    close_to([d.embedding for d in answer.data], expected)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > len(TEXTS)
    encoded = api.embeddings.create(model="", input=TEXTS[0])  # the openai package asks for base64 and decodes it
    close_to([encoded.data[0].embedding], expected[:1])
    with swarm.client() as client:
        result = client.embed(TEXTS)
    close_to(result.vectors, expected)

    async def embed_async() -> EmbedResult:
        async with AsyncSwarmClient(swarm.address) as client:
            return await client.embed([TEXTS[1]])

    close_to(asyncio.run(embed_async()).vectors, expected[1:2])
    assert result.worker_id and result.prompt_tokens == answer.usage.prompt_tokens
    status, same_width = post(swarm, {"input": [[1, 2, 3], "x"], "dimensions": len(expected[0])})
    assert status == 200 and len(same_width["data"]) == 2


def test_bad_embedding_requests_get_400s_naming_the_field(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    cases = [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": ["ok", 3.5]}, "input[1]"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 7}, "dimensions"),
        ({"input": [[10**6]]}, "input[0]"),
        ({"input": "x", "model": "nope"}, "model"),
    ]
    for body, field in cases:
        status, answer = post(swarm, body)
        assert status in (400, 404), (body, answer)
        assert answer["error"]["message"].startswith(field) or answer["error"]["param"] == field, (body, answer)


def test_a_worker_that_dies_under_an_embedding_request_is_replaced_by_another(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    workers = [swarm.add_worker("--worker-id", name, name=name) for name in ("e-a", "e-b")]
    swarm.wait_for_workers(2)
    expected = reference(swarm.model, TEXTS[:2])
    workers[0].kill()  # the registry still lists it as up: the coordinator's first choice may be a dead worker
    for _ in range(4):  # ties go to the worker given fewer embeddings: the dead one is tried within two
        status, answer = post(swarm, {"input": TEXTS[:2]})
        assert status == 200, answer
        close_to([d["embedding"] for d in answer["data"]], expected)
    assert "failed on e-a" in swarm.coordinator.log_tail(1_000_000), "the dead worker was never tried: no retry tested"
