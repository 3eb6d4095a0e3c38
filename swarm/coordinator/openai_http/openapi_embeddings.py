"""The OpenAPI 3 parts of /v1/embeddings and of log-probabilities, for openapi_document."""

from __future__ import annotations

from typing import Any

_TOKENS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}

EMBEDDINGS_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"type": "string", "description": "a served model; empty or missing: the swarm's default model"},
        "input": {
            "description": "a text, texts, token ids or lists of token ids (at most 2,048 inputs)",
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 2048},
                _TOKENS,
                {"type": "array", "items": _TOKENS, "minItems": 1, "maxItems": 2048},
            ],
        },
        "encoding_format": {
            "type": "string",
            "enum": ["float", "base64"],
            "description": "base64: each vector's little-endian float32 bytes",
        },
        "dimensions": {
            "type": "integer",
            "minimum": 1,
            "description": "accepted only equal to the model's own width: vectors are never shortened",
        },
        "user": {"type": "string"},
    },
}

EMBEDDINGS_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "model": {"type": "string"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "object": {"type": "string", "enum": ["embedding"]},
                    "index": {"type": "integer"},
                    "embedding": {
                        "description": "a unit vector (L2-normalized), pooled as the model says (mean for a causal LM)",
                        "oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}],
                    },
                },
            },
        },
        "usage": {
            "type": "object",
            "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}},
        },
    },
}

_LOGPROB_NOTE = "log-softmax of the model's raw logits, before temperature, penalties and grammar"

CHAT_LOGPROB_FIELDS: dict[str, Any] = {
    "logprobs": {
        "type": "boolean",
        "description": f"each token's log-probability in choices[].logprobs ({_LOGPROB_NOTE})",
    },
    "top_logprobs": {
        "type": "integer",
        "minimum": 0,
        "maximum": 20,
        "description": "and the likeliest tokens' at each place; needs logprobs: true",
    },
}

COMPLETION_LOGPROB_FIELDS: dict[str, Any] = {
    "logprobs": {
        "type": "integer",
        "minimum": 0,
        "maximum": 5,
        "description": f"tokens, token_logprobs, top_logprobs (this many) and text_offset in choices[].logprobs "
        f"({_LOGPROB_NOTE})",
    },
}

CHAT_LOGPROBS: dict[str, Any] = {
    "type": "object",
    "nullable": True,
    "properties": {
        "content": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "token": {"type": "string"},
                    "logprob": {"type": "number"},
                    "bytes": {"type": "array", "items": {"type": "integer"}},
                    "top_logprobs": {"type": "array", "items": {"type": "object"}},
                },
            },
        }
    },
}

COMPLETION_LOGPROBS: dict[str, Any] = {
    "type": "object",
    "nullable": True,
    "properties": {
        "tokens": {"type": "array", "items": {"type": "string"}},
        "token_logprobs": {"type": "array", "items": {"type": "number"}},
        "top_logprobs": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "number"}}},
        "text_offset": {"type": "array", "items": {"type": "integer"}},
    },
}
