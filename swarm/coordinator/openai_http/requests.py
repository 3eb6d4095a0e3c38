"""Parses OpenAI-style request bodies (/v1/completions, /v1/chat/completions) into RawRequests, naming bad fields."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from swarm.coordinator.openai_http.chat_template import ChatMessage, PastToolCall
from swarm.coordinator.openai_http.tool_request import ToolRequest, parse_tools
from swarm.shared.output_format import output_grammar
from swarm.shared.types import RawRequest
from swarm.shared.validation import UINT64_MAX, InvalidRequest

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MAX_SEED = UINT64_MAX  # the wire's seed is a uint64
# No request the API defines nests deeper than a few levels; a deeper body is refused before
# anything walks it (json.loads itself recurses, and 5,000 "[" would exhaust its stack).
MAX_JSON_DEPTH = 32
MAX_COMPLETION_LOGPROBS = 5  # the legacy completions API's limit on its integer logprobs

# Fields that change what OpenAI would answer, which the swarm cannot honour: accepted only at
# their "off" value, so a client never silently gets something other than it asked for.
_UNSUPPORTED_UNLESS_OFF: dict[str, tuple[Any, ...]] = {
    "echo": (None, False),
    "best_of": (None, 1),
    "suffix": (None, ""),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "functions": (None, []),  # the deprecated form of tools
    "audio": (None,),
}


@dataclass(frozen=True)
class CompletionCall:
    raw: RawRequest
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk carries the usage


@dataclass(frozen=True)
class ChatCall:
    raw: RawRequest  # its prompt is empty until the model's chat template renders the messages
    messages: tuple[ChatMessage, ...]
    stream: bool = False
    include_usage: bool = False
    tools: ToolRequest | None = None  # None: no functions offered, or tool_choice "none"


def parse_json_body(data: bytes) -> Mapping[str, Any]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest("body", f"is not valid JSON: {exc}") from exc
    except RecursionError:
        raise InvalidRequest("body", f"nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    _check_json_value(body)
    return body


def _check_json_value(value: Any) -> None:
    """Refuses nesting past MAX_JSON_DEPTH and text that is no unicode (a lone surrogate such as "\\ud800",
    which JSON's escapes allow but nothing can encode); walks iteratively, so depth cannot exhaust the stack."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest("body", f"nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        where = f"{text[max(0, exc.start - 20) : exc.start]!r}"
        raise InvalidRequest("body", f"holds a lone surrogate (\\u{ord(text[exc.start]):04x}) after {where}") from None


def parse_completion(body: Mapping[str, Any]) -> CompletionCall:
    for field in ("tools", "tool_choice", "parallel_tool_calls"):
        if body.get(field) is not None:
            raise InvalidRequest(field, "is for /v1/chat/completions; completions call no tools")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("prompt", "must be a string (or a list of exactly one string)")
    raw, stream, include_usage = _common(body, prompt)
    # The legacy API's logprobs is a count: the likeliest tokens reported beside each generated one.
    if body.get("top_logprobs") is not None:
        raise InvalidRequest("top_logprobs", "is a chat completions field; /v1/completions takes logprobs: 0-5")
    count = _optional_int(body, "logprobs")
    if count is not None and not 0 <= count <= MAX_COMPLETION_LOGPROBS:
        raise InvalidRequest("logprobs", f"must be in [0, {MAX_COMPLETION_LOGPROBS}], got {count}")
    raw = replace(raw, logprobs=count is not None, top_logprobs=count or 0)
    return CompletionCall(raw, stream, include_usage)


def parse_chat(body: Mapping[str, Any]) -> ChatCall:
    raw, stream, include_usage = _common(body, "")
    tools = parse_tools(body)
    if tools is not None and raw.grammar:
        raise InvalidRequest("tools", "cannot be combined with response_format or grammar (the calls have their own)")
    logprobs = _optional_bool(body, "logprobs") or False
    top = _optional_int(body, "top_logprobs")  # its range and its need of logprobs: validate_request
    raw = replace(raw, logprobs=logprobs, top_logprobs=0 if top is None else top)
    return ChatCall(raw, _messages(body.get("messages")), stream, include_usage, tools)


def _common(body: Mapping[str, Any], prompt: str) -> tuple[RawRequest, bool, bool]:
    """The fields both endpoints share, type-checked; ranges are checked later by validate_request."""
    for field, off_values in _UNSUPPORTED_UNLESS_OFF.items():
        if body.get(field) not in off_values:
            raise InvalidRequest(field, "is not supported by this server")
    n = _optional_int(body, "n")
    if n not in (None, 1):
        raise InvalidRequest("n", "only n=1 (one choice per request) is supported")
    max_tokens_field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _optional_int(body, max_tokens_field)
    if max_tokens is not None and max_tokens < 1:
        raise InvalidRequest(max_tokens_field, "must be at least 1")
    seed = _optional_int(body, "seed")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InvalidRequest("seed", f"must be in [0, {MAX_SEED}]")
    top_k = _optional_int(body, "top_k")  # llama.cpp's extensions to the OpenAI fields
    if top_k is not None and top_k < 0:
        raise InvalidRequest("top_k", "must be >= 0")
    raw = RawRequest(
        model=_optional_str(body, "model"),
        prompt=prompt,
        max_tokens=max_tokens or 0,
        temperature=_optional_number(body, "temperature"),
        top_p=_optional_number(body, "top_p"),
        top_k=top_k or 0,
        seed=seed,
        stop=_stop(body.get("stop")),
        min_p=_optional_number(body, "min_p"),
        repeat_penalty=_optional_number(body, "repeat_penalty"),
        grammar=output_grammar(body),
        speculate=_optional_bool(body, "speculate"),
    )
    stream = _optional_bool(body, "stream") or False
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("stream_options", "must be an object")
    include_usage = _optional_bool(options or {}, "include_usage", "stream_options.include_usage") or False
    return raw, stream, include_usage


def _messages(value: Any) -> tuple[ChatMessage, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("messages", "must be a non-empty list of messages")
    messages = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(where, "must be an object with a role and content")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise InvalidRequest(f"{where}.role", f"must be one of {', '.join(sorted(CHAT_ROLES))}")
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequest(f"{where}.name", "must be a string")
        content = _content(message.get("content"), f"{where}.content")
        calls = _past_calls(message.get("tool_calls"), f"{where}.tool_calls") if role == "assistant" else ()
        call_id = message.get("tool_call_id")
        if role == "tool" and not isinstance(call_id, str):
            raise InvalidRequest(f"{where}.tool_call_id", "must name the call a tool message answers")
        messages.append(ChatMessage(role, content, name or "", calls, call_id if isinstance(call_id, str) else ""))
    return tuple(messages)


def _past_calls(value: Any, where: str) -> tuple[PastToolCall, ...]:
    """An assistant turn's tool calls, as the client repeats them from an earlier answer."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest(where, "must be a list of tool calls")
    calls = []
    for i, call in enumerate(value):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"{where}[{i}].function", "must be an object with a name and arguments")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            raise InvalidRequest(f"{where}[{i}].function.arguments", "must be a string of JSON")
        call_id = call.get("id", "")
        if not isinstance(call_id, str):
            raise InvalidRequest(f"{where}[{i}].id", "must be a string")
        calls.append(PastToolCall(call_id, function["name"], arguments))
    return tuple(calls)


def _content(value: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts joined (images and audio are not supported)."""
    if value is None or isinstance(value, str):
        return value or ""
    if not isinstance(value, list):
        raise InvalidRequest(where, "must be a string or a list of text parts")
    texts = []
    for i, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise InvalidRequest(f"{where}[{i}]", 'only {"type": "text", "text": ...} parts are supported')
        texts.append(part["text"])
    return "".join(texts)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise InvalidRequest("stop", "must be a string or a list of strings")


def _optional_str(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be a string")
    return value


def _optional_int(body: Mapping[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # JSON has one number type; 16.0 means 16
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(field, "must be an integer")
    return value


def _optional_number(body: Mapping[str, Any], field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(field, "must be a number")
    return float(value)


def _optional_bool(body: Mapping[str, Any], field: str, name: str = "") -> bool | None:
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(name or field, "must be true or false")
    return value
