"""/v1/embeddings bodies: OpenAI's four input forms, bad fields named, float and base64 answers, dimensions."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from swarm.coordinator.openai_http.embeddings_api import embeddings_body, parse_embeddings
from swarm.coordinator.openai_http.openapi_document import openapi_document
from swarm.shared.embedding_messages import EmbedResult, check_inputs
from swarm.shared.validation import InvalidRequest


@pytest.mark.parametrize(
    ("value", "inputs"),
    [
        ("one", ("one",)),
        (["a", "b"], ("a", "b")),
        ([1, 2, 3], ((1, 2, 3),)),
        ([[1, 2], [3]], ((1, 2), (3,))),
        (["a", [4]], ("a", (4,))),
    ],
)
def test_every_openai_input_form_parses(value: Any, inputs: tuple[Any, ...]) -> None:
    assert parse_embeddings({"input": value}).request.inputs == inputs


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": 3}, "input"),
        ({"input": ["a", None]}, "input[1]"),
        ({"input": [[1], [True]]}, "input[1]"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "model": 1}, "model"),
    ],
)
def test_a_bad_field_is_named(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_embeddings(body)
    assert raised.value.field == field


def test_inputs_no_worker_could_embed_are_refused_before_routing() -> None:
    for inputs, field in (((), "input"), (("a", ""), "input[1]"), (((1, -2),), "input[0]"), (("x",) * 2049, "input")):
        with pytest.raises(InvalidRequest) as raised:
            check_inputs(inputs)
        assert raised.value.field == field


def test_answers_in_float_and_base64_and_dimensions_only_equal_to_the_models() -> None:
    result = EmbedResult("m", ((0.6, 0.8), (1.0, 0.0)), 7, "w")
    body = embeddings_body(parse_embeddings({"input": ["a", "b"]}), result)
    assert body["data"][1] == {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]}
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7} and body["model"] == "m"
    encoded = embeddings_body(parse_embeddings({"input": "a", "encoding_format": "base64", "dimensions": 2}), result)
    decoded = np.frombuffer(base64.b64decode(encoded["data"][0]["embedding"]), dtype="<f4")
    assert decoded.tolist() == pytest.approx([0.6, 0.8])
    with pytest.raises(InvalidRequest) as raised:
        embeddings_body(parse_embeddings({"input": "a", "dimensions": 1}), result)
    assert raised.value.field == "dimensions" and "2-dimensional" in str(raised.value)


def test_the_openapi_document_describes_embeddings_and_logprobs() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    assert "/v1/embeddings" in document["paths"]
    assert schemas["ChatCompletionRequest"]["properties"]["top_logprobs"]["maximum"] == 20
    assert schemas["CompletionRequest"]["properties"]["logprobs"]["maximum"] == 5
