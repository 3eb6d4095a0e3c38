"""/v1/embeddings in OpenAI's shapes: the request body's inputs, naming a bad field, and the answer's body."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from swarm.shared.embedding_messages import EmbedInput, EmbedRequest, EmbedResult
from swarm.shared.validation import InvalidRequest

ENCODINGS = ("float", "base64")


@dataclass(frozen=True)
class EmbeddingsCall:
    request: EmbedRequest
    encoding_format: str = "float"
    dimensions: int | None = None  # checked against the model's width once a worker answered


def parse_embeddings(body: Mapping[str, Any]) -> EmbeddingsCall:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("model", "must be a string")
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ENCODINGS:
        raise InvalidRequest("encoding_format", f"must be one of {', '.join(ENCODINGS)}")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise InvalidRequest("dimensions", "must be a positive integer")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("user", "must be a string")
    return EmbeddingsCall(EmbedRequest(model or "", _inputs(body.get("input"))), encoding, dimensions)


def _inputs(value: Any) -> tuple[EmbedInput, ...]:
    """A string, a list of strings, a list of token ids, or a list of such lists (OpenAI's four forms)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not value:
        raise InvalidRequest("input", "must be a string, a list of strings, or token ids (a list or lists of them)")
    if all(_is_token(t) for t in value):
        return (tuple(value),)
    inputs: list[EmbedInput] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            inputs.append(item)
        elif isinstance(item, list) and all(_is_token(t) for t in item):
            inputs.append(tuple(item))
        else:
            raise InvalidRequest(f"input[{i}]", "must be a string or a list of token ids")
    return tuple(inputs)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def embeddings_body(call: EmbeddingsCall, result: EmbedResult) -> dict[str, Any]:
    width = len(result.vectors[0]) if result.vectors else 0
    if call.dimensions is not None and call.dimensions != width:
        raise InvalidRequest(
            "dimensions", f"model {result.model!r} makes {width}-dimensional embeddings and cannot shorten them"
        )
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(vector, call.encoding_format)}
        for i, vector in enumerate(result.vectors)
    ]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return {"object": "list", "data": data, "model": result.model, "usage": usage}


def _encoded(vector: tuple[float, ...], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI's clients decode it
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return list(vector)
