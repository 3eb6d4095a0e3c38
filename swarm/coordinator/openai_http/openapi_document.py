"""The OpenAPI 3 document of the coordinator's OpenAI-compatible HTTP API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from swarm.coordinator.openai_http.openapi_embeddings import (
    CHAT_LOGPROB_FIELDS,
    CHAT_LOGPROBS,
    COMPLETION_LOGPROB_FIELDS,
    COMPLETION_LOGPROBS,
    EMBEDDINGS_ANSWER,
    EMBEDDINGS_REQUEST,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_ERRORS = {
    status: {"description": what, "content": _json(_ref("Error"))}
    for status, what in {
        "400": "a field is invalid (error.param names it), the body is not JSON, or the model has no chat template",
        "404": "the model is not served by this swarm",
        "429": "the swarm's queue is full",
        "503": "no worker serves the model",
    }.items()
}

_SAMPLING = {
    "model": {"type": "string", "description": "a served model; empty or missing: the swarm's default model"},
    "max_tokens": {"type": "integer", "minimum": 1, "description": "tokens to generate (default 128)"},
    "max_completion_tokens": {"type": "integer", "minimum": 1, "description": "the same as max_tokens"},
    "temperature": {"type": "number", "minimum": 0, "description": "0 is greedy (default 0.8)"},
    "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "top_k": {"type": "integer", "minimum": 0, "description": "llama.cpp extension; 0 disables it"},
    "min_p": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "description": "llama.cpp extension"},
    "repeat_penalty": {"type": "number", "exclusiveMinimum": 0, "maximum": 10, "description": "llama.cpp extension"},
    "seed": {"type": "integer", "minimum": 0, "description": "unset: random"},
    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 8}]},
    "n": {"type": "integer", "enum": [1]},
    "response_format": {
        "type": "object",
        "description": "text, json_object or json_schema {name, schema, strict}: a grammar holds the output to it",
        "properties": {"type": {"type": "string", "enum": ["text", "json_object", "json_schema"]}},
    },
    "grammar": {
        "type": "string",
        "description": "llama.cpp extension: GBNF with a root rule; not with response_format",
    },
    "speculate": {
        "type": "boolean",
        "description": "swarm extension: false verifies no proposed tokens (speculative decoding off); same text",
    },
    "stream": {"type": "boolean", "description": "answer with server-sent events, ending with data: [DONE]"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
}

_USAGE = {
    "type": "object",
    "properties": {name: {"type": "integer"} for name in ("prompt_tokens", "completion_tokens", "total_tokens")},
}

_FINISH_REASON = {"type": "string", "enum": ["stop", "length", "cancelled", "tool_calls"]}


# Tool calls: the functions offered, how the model must use them, and a call as answers carry it.
_FUNCTION = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "description": {"type": "string"},
        "parameters": {"type": "object", "description": "JSON schema of the arguments (structured output's keywords)"},
    },
}
_TOOLS = {
    "tools": {
        "type": "array",
        "items": {"type": "object", "properties": {"type": {"enum": ["function"]}, "function": _FUNCTION}},
    },
    "tool_choice": {
        "oneOf": [
            {"type": "string", "enum": ["none", "auto", "required"]},
            {"type": "object", "properties": {"type": {"enum": ["function"]}, "function": {"type": "object"}}},
        ]
    },
    "parallel_tool_calls": {"type": "boolean", "default": True},
}
_TOOL_CALL = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "arguments": {"type": "string", "description": "JSON"}},
        },
    },
}


def _answer(obj: str, choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": [obj]},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object", "properties": choice}},
            "usage": _USAGE,
        },
    }


def _generation(summary: str, request: str, answer: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": _json(_ref(request))},
            "responses": {
                "200": {
                    "description": f"the {answer}, or with stream: true its chunks as text/event-stream",
                    "content": {**_json(_ref(answer)), "text/event-stream": {"schema": {"type": "string"}}},
                },
                **_ERRORS,
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "swarm OpenAI-compatible API",
            "version": "1",
            "description": "Completions, chat completions and embeddings on the swarm's workers, in OpenAI's shapes.",
        },
        "paths": {
            "/v1/models": {
                "get": {
                    "summary": "The models the swarm serves",
                    "responses": {"200": {"description": "the models", "content": _json(_ref("ModelList"))}},
                }
            },
            "/v1/completions": _generation("Complete a prompt", "CompletionRequest", "Completion"),
            "/v1/chat/completions": _generation(
                "Answer a chat, rendered with the model's own chat template", "ChatCompletionRequest", "ChatCompletion"
            ),
            "/v1/embeddings": {
                "post": {
                    "summary": "Embed texts or token lists on a worker of the model, many per decode",
                    "requestBody": {"required": True, "content": _json(_ref("EmbeddingsRequest"))},
                    "responses": {
                        "200": {
                            "description": "one embedding per input, in order",
                            "content": _json(_ref("Embeddings")),
                        },
                        **_ERRORS,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "param": {"type": "string", "nullable": True},
                                "code": {"type": "string", "nullable": True},
                            },
                        }
                    },
                },
                "ModelList": {
                    "type": "object",
                    "properties": {
                        "object": {"type": "string", "enum": ["list"]},
                        "data": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "object": {"type": "string", "enum": ["model"]},
                                    "created": {"type": "integer"},
                                    "owned_by": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "CompletionRequest": {
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {
                        "prompt": {
                            "oneOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
                            ]
                        },
                        **_SAMPLING,
                        **COMPLETION_LOGPROB_FIELDS,
                    },
                },
                "ChatCompletionRequest": {
                    "type": "object",
                    "required": ["messages"],
                    "properties": {
                        "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
                        **_SAMPLING,
                        **_TOOLS,
                        **CHAT_LOGPROB_FIELDS,
                    },
                },
                "ChatMessage": {
                    "type": "object",
                    "required": ["role"],
                    "properties": {
                        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
                        "content": {
                            "oneOf": [
                                {"type": "string"},
                                {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "type": {"type": "string", "enum": ["text"]},
                                            "text": {"type": "string"},
                                        },
                                    },
                                },
                            ]
                        },
                        "name": {"type": "string"},
                        "tool_calls": {"type": "array", "items": _ref("ToolCall")},
                        "tool_call_id": {"type": "string", "description": "a tool message: the call it answers"},
                    },
                },
                "ToolCall": _TOOL_CALL,
                "Completion": _answer(
                    "text_completion",
                    {
                        "index": {"type": "integer"},
                        "text": {"type": "string"},
                        "logprobs": COMPLETION_LOGPROBS,
                        "finish_reason": _FINISH_REASON,
                    },
                ),
                "EmbeddingsRequest": EMBEDDINGS_REQUEST,
                "Embeddings": EMBEDDINGS_ANSWER,
                "ChatCompletion": _answer(
                    "chat.completion",
                    {
                        "index": {"type": "integer"},
                        "message": _ref("ChatMessage"),
                        "logprobs": CHAT_LOGPROBS,
                        "finish_reason": _FINISH_REASON,
                    },
                ),
            }
        },
    }
