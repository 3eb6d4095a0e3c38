"""OpenAI-style response bodies: completions and chat completions (whole or as stream chunks), models, errors."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from swarm.coordinator.openai_http.logprob_shapes import chat_logprobs, completion_logprobs
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import Finished, ModelSummary, TokenLogprob
from swarm.shared.validation import InvalidRequest

# HTTP status, OpenAI error type and code for each swarm error.
_ERROR_SHAPES: dict[ErrorCode, tuple[int, str, str | None]] = {
    ErrorCode.INVALID_ARGUMENT: (400, "invalid_request_error", None),
    ErrorCode.FAILED_PRECONDITION: (400, "invalid_request_error", None),
    ErrorCode.NOT_FOUND: (404, "invalid_request_error", "model_not_found"),
    ErrorCode.ALREADY_EXISTS: (409, "invalid_request_error", "already_exists"),
    ErrorCode.UNAUTHENTICATED: (401, "invalid_request_error", "invalid_api_key"),
    ErrorCode.PERMISSION_DENIED: (403, "invalid_request_error", "permission_denied"),
    ErrorCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error", "rate_limit_exceeded"),
    ErrorCode.UNAVAILABLE: (503, "server_error", "service_unavailable"),
    ErrorCode.DEADLINE_EXCEEDED: (504, "server_error", "timeout"),
    ErrorCode.CANCELLED: (499, "server_error", "cancelled"),
    ErrorCode.INTERNAL: (500, "server_error", None),
}


@dataclass(frozen=True)
class ErrorReply:
    status: int
    body: dict[str, Any]


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def invalid_request_reply(exc: InvalidRequest) -> ErrorReply:
    return ErrorReply(400, error_body(str(exc), "invalid_request_error", exc.field))


def swarm_error_reply(exc: SwarmError) -> ErrorReply:
    status, error_type, code = _ERROR_SHAPES.get(exc.code, _ERROR_SHAPES[ErrorCode.INTERNAL])
    param = exc.__cause__.field if isinstance(exc.__cause__, InvalidRequest) else None
    if exc.code is ErrorCode.NOT_FOUND:
        param = "model"
    return ErrorReply(status, error_body(exc.message, error_type, param, code))


def models_body(models: list[ModelSummary]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "swarm",
                # Extensions: where it runs, and whether a request for it must wait for it to load.
                "workers": list(m.workers),
                **({"state": m.state, "pinned": m.pinned} if m.state else {}),
            }
            for m in models
        ],
    }


def usage(finished: Finished) -> dict[str, int]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


@dataclass(frozen=True)
class CompletionShape:
    """The bodies of one /v1/completions answer: its id, creation time and model are shared by every chunk."""

    chunk_object: ClassVar[str] = "text_completion"  # OpenAI names completion chunks as whole answers

    model: str
    include_usage: bool = False
    id: str = field(default_factory=lambda: "cmpl-" + secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))
    logprobs: bool = False  # the request asked for them: choices carry them
    prompt_chars: int = 0  # completions' text_offset counts from the prompt's start

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def _logprobs(self, logprobs: Sequence[TokenLogprob], sent_chars: int) -> dict[str, Any] | None:
        """sent_chars: characters of the answer before these tokens' text."""
        return completion_logprobs(logprobs, self.prompt_chars + sent_chars) if self.logprobs else None

    def body(self, text: str, finished: Finished, logprobs: Sequence[TokenLogprob] = ()) -> dict[str, Any]:
        reason = finished.reason.value
        choice = {"index": 0, "text": text, "logprobs": self._logprobs(logprobs, 0), "finish_reason": reason}
        return {**self._envelope("text_completion"), "choices": [choice], "usage": usage(finished)}

    def opening_chunks(self) -> list[dict[str, Any]]:
        return []

    def text_chunk(self, text: str, logprobs: Sequence[TokenLogprob] = (), sent_chars: int = 0) -> dict[str, Any]:
        return self._chunk(
            {"index": 0, "text": text, "logprobs": self._logprobs(logprobs, sent_chars), "finish_reason": None}
        )

    def text_chunks(
        self, text: str, logprobs: Sequence[TokenLogprob] = (), sent_chars: int = 0
    ) -> list[dict[str, Any]]:
        """The chunks one piece of the answer's text makes (none for empty text)."""
        return [self.text_chunk(text, logprobs, sent_chars)] if text else []

    def finish_reason(self, finished: Finished) -> str:
        return finished.reason.value

    def final_chunks(self, finished: Finished) -> list[dict[str, Any]]:
        choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": finished.reason.value}
        return [self._chunk(choice), *self._usage_chunk(finished)]

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        chunk = {**self._envelope(self.chunk_object), "choices": [choice]}
        return {**chunk, "usage": None} if self.include_usage else chunk

    def _usage_chunk(self, finished: Finished) -> list[dict[str, Any]]:
        if not self.include_usage:
            return []
        return [{**self._envelope(self.chunk_object), "choices": [], "usage": usage(finished)}]


@dataclass(frozen=True)
class ChatShape(CompletionShape):
    """The bodies of one /v1/chat/completions answer."""

    chunk_object: ClassVar[str] = "chat.completion.chunk"

    id: str = field(default_factory=lambda: "chatcmpl-" + secrets.token_hex(12))

    def _logprobs(self, logprobs: Sequence[TokenLogprob], sent_chars: int) -> dict[str, Any] | None:
        return chat_logprobs(logprobs) if self.logprobs else None

    def body(self, text: str, finished: Finished, logprobs: Sequence[TokenLogprob] = ()) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": self._logprobs(logprobs, 0),
            "finish_reason": self.finish_reason(finished),
        }
        return {**self._envelope("chat.completion"), "choices": [choice], "usage": usage(finished)}

    def opening_chunks(self) -> list[dict[str, Any]]:
        delta = {"role": "assistant", "content": ""}
        return [self._chunk({"index": 0, "delta": delta, "logprobs": None, "finish_reason": None})]

    def text_chunk(self, text: str, logprobs: Sequence[TokenLogprob] = (), sent_chars: int = 0) -> dict[str, Any]:
        delta = {"content": text}
        return self._chunk({"index": 0, "delta": delta, "logprobs": self._logprobs(logprobs, 0), "finish_reason": None})

    def final_chunks(self, finished: Finished) -> list[dict[str, Any]]:
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": self.finish_reason(finished)}
        return [self._chunk(choice), *self._usage_chunk(finished)]
