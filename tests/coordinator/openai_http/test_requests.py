"""Parsing OpenAI request bodies into RawRequests: accepted shapes, and the field named for each bad one."""

from __future__ import annotations

from typing import Any

import pytest

from swarm.coordinator.openai_http.chat_template import ChatMessage
from swarm.coordinator.openai_http.requests import parse_chat, parse_completion, parse_json_body
from swarm.coordinator.openai_http.responses import swarm_error_reply
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import RawRequest
from swarm.shared.validation import InvalidRequest, RequestLimits, validate_request


def test_a_full_completion_body_maps_field_by_field() -> None:
    call = parse_completion(
        {
            "model": "tiny",
            "prompt": "Hello",
            "max_tokens": 7,
            "temperature": 0,
            "top_p": 0.5,
            "seed": 42,
            "stop": ["\n", "."],
            "n": 1,
            "stream": True,
            "stream_options": {"include_usage": True},
            "top_k": 40,
            "user": "ignored",
            "presence_penalty": 0,
        }
    )
    assert call.raw == RawRequest(
        model="tiny", prompt="Hello", max_tokens=7, temperature=0.0, top_p=0.5, seed=42, stop=("\n", "."), top_k=40
    )
    assert call.stream and call.include_usage


def test_a_minimal_completion_body_leaves_the_defaults_to_the_swarm() -> None:
    call = parse_completion({"prompt": ["Hi"], "stop": "END", "max_tokens": 16.0})
    assert call.raw == RawRequest(prompt="Hi", stop=("END",), max_tokens=16)
    assert not call.stream and not call.include_usage


def test_max_completion_tokens_is_accepted_as_max_tokens() -> None:
    assert parse_chat({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 9}).raw.max_tokens == 9


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": "x", "n": 2}, "n"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "max_tokens": "5"}, "max_tokens"),
        ({"prompt": "x", "max_tokens": 2.5}, "max_tokens"),
        ({"prompt": "x", "max_completion_tokens": -1}, "max_completion_tokens"),
        ({"prompt": "x", "temperature": "hot"}, "temperature"),
        ({"prompt": "x", "temperature": True}, "temperature"),
        ({"prompt": "x", "top_p": None, "seed": -1}, "seed"),
        ({"prompt": "x", "stop": ["a", 3]}, "stop"),
        ({"prompt": "x", "stream": "yes"}, "stream"),
        ({"prompt": "x", "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
        ({"prompt": "x", "stream_options": []}, "stream_options"),
        ({"prompt": "x", "model": 3}, "model"),
        ({"prompt": "x", "echo": True}, "echo"),
        ({"prompt": "x", "logprobs": 6}, "logprobs"),
        ({"prompt": "x", "logprobs": True}, "logprobs"),
        ({"prompt": "x", "logprobs": 1, "top_logprobs": 1}, "top_logprobs"),
        ({"prompt": "x", "frequency_penalty": 0.5}, "frequency_penalty"),
        ({"prompt": "x", "best_of": 3}, "best_of"),
        ({"prompt": "x", "top_k": -1}, "top_k"),
    ],
)
def test_a_bad_completion_field_is_named(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_completion(body)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_chat_messages_become_template_messages_with_text_parts_joined() -> None:
    call = parse_chat(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": None, "name": "bot"},
            ],
            "temperature": 0,
        }
    )
    assert call.messages == (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hello there"),
        ChatMessage("assistant", "", "bot"),
    )
    assert call.raw.prompt == "" and call.raw.temperature == 0.0


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (None, "messages"),
        ([], "messages"),
        ("hello", "messages"),
        (["hello"], "messages[0]"),
        ([{"role": "user", "content": "a"}, {"role": "wizard", "content": "b"}], "messages[1].role"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "messages[0].content[0]"),
        ([{"role": "user", "content": "a", "name": 7}], "messages[0].name"),
    ],
)
def test_a_bad_chat_message_is_named(messages: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_chat({"messages": messages})
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"prompt": "Hi \\ud800"}', "lone surrogate"),
        (b'{"Hi \\udc00": 1}', "lone surrogate"),
        (b"[" * 5000, "nests deeper"),
        (b'{"stop": ' + b"[" * 33 + b"]" * 33 + b"}", "nests deeper"),
    ],
)
def test_a_body_that_is_no_json_object_is_refused(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem) as raised:
        parse_json_body(data)
    assert raised.value.field == "body"


def test_a_range_error_found_by_the_service_keeps_its_field_in_the_openai_error() -> None:
    # The service wraps validate_request's InvalidRequest in a SwarmError; the reply still names the field.
    call = parse_completion({"prompt": "x", "temperature": 50})
    with pytest.raises(InvalidRequest) as raised:
        validate_request(call.raw, RequestLimits())
    error = SwarmError(ErrorCode.INVALID_ARGUMENT, str(raised.value))
    error.__cause__ = raised.value
    reply = swarm_error_reply(error)
    assert reply.status == 400
    assert reply.body["error"]["param"] == "temperature"
    assert reply.body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.NOT_FOUND, 404),
        (ErrorCode.RESOURCE_EXHAUSTED, 429),
        (ErrorCode.UNAVAILABLE, 503),
        (ErrorCode.UNAUTHENTICATED, 401),
        (ErrorCode.INTERNAL, 500),
    ],
)
def test_swarm_errors_map_to_http_statuses(code: ErrorCode, status: int) -> None:
    reply = swarm_error_reply(SwarmError(code, "what went wrong"))
    assert reply.status == status
    assert reply.body["error"]["message"] == "what went wrong"
    assert set(reply.body["error"]) == {"message", "type", "param", "code"}


def test_logprobs_become_the_sampler_fields_on_both_endpoints() -> None:
    completion = parse_completion({"prompt": "x", "logprobs": 5}).raw
    assert (completion.logprobs, completion.top_logprobs) == (True, 5)
    assert parse_completion({"prompt": "x", "logprobs": 0}).raw.logprobs
    assert not parse_completion({"prompt": "x"}).raw.logprobs
    chat = parse_chat({"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 20}).raw
    assert (chat.logprobs, chat.top_logprobs) == (True, 20)
    with pytest.raises(InvalidRequest) as raised:
        parse_chat({"messages": [{"role": "user", "content": "x"}], "logprobs": 2})
    assert raised.value.field == "logprobs"
