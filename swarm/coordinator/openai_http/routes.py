"""The OpenAI-compatible HTTP routes (/v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings,
/openapi.json)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import replace
from typing import Any, cast

from aiohttp import web

from swarm.coordinator.auth.http_auth import caller_access, caller_key
from swarm.coordinator.openai_http.chat_template import BrokenChatTemplate, ChatRejected, render_chat
from swarm.coordinator.openai_http.embeddings_api import embeddings_body, parse_embeddings
from swarm.coordinator.openai_http.openapi_document import openapi_document
from swarm.coordinator.openai_http.requests import parse_chat, parse_completion, parse_json_body
from swarm.coordinator.openai_http.responses import (
    ChatShape,
    CompletionShape,
    ErrorReply,
    error_body,
    models_body,
)
from swarm.coordinator.openai_http.tool_dialect import ToolsUnsupported, call_grammar, check_template_calls_tools
from swarm.coordinator.openai_http.tool_responses import ToolChatShape
from swarm.coordinator.service import InferenceService
from swarm.coordinator.web.errors import openai_error
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import Finished, GenerationEvent, RawRequest, TextPiece
from swarm.shared.validation import InvalidRequest

log = logging.getLogger(__name__)


def add_openai_routes(app: web.Application, service: InferenceService) -> None:
    routes = OpenAIRoutes(service)
    app.router.add_get("/v1/models", routes.models)
    app.router.add_post("/v1/completions", routes.completions)
    app.router.add_post("/v1/chat/completions", routes.chat_completions)
    app.router.add_post("/v1/embeddings", routes.embeddings)
    app.router.add_get("/openapi.json", routes.openapi)


def _reply(error: ErrorReply) -> web.Response:
    return web.json_response(error.body, status=error.status)


async def _body(request: web.Request) -> Mapping[str, Any]:
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise InvalidRequest("body", exc.text or "is too large") from exc
    return parse_json_body(data)


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"data: {text}\n\n".encode()


class OpenAIRoutes:
    """The handlers; what they raise (a bad field, a swarm error, Redis failing) gets its status from
    web/errors.http_error_boundary, the app's middleware."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(models_body(await self._service.list_models(caller_access(request))))

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def completions(self, request: web.Request) -> web.StreamResponse:
        call = parse_completion(await _body(request))
        shape = CompletionShape(
            await self._service.resolve_model(call.raw.model),
            call.include_usage,
            logprobs=call.raw.logprobs,
            prompt_chars=len(call.raw.prompt),
        )
        return await self._answer(request, replace(call.raw, model=shape.model), shape, call.stream)

    async def embeddings(self, request: web.Request) -> web.Response:
        call = parse_embeddings(await _body(request))
        return web.json_response(embeddings_body(call, await self._service.embed(call.request)))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            call = parse_chat(await _body(request))
            model = await self._service.resolve_model(call.raw.model)
            template = await self._service.chat_template(model)
            if not template:
                message = f"model {model!r} has no chat template; use /v1/completions"
                return _reply(ErrorReply(400, error_body(message, "invalid_request_error", "model")))
            raw = replace(call.raw, model=model)
            shape = ChatShape(model, call.include_usage, logprobs=call.raw.logprobs)
            if call.tools is not None:
                check_template_calls_tools(template, model)
                grammar, trigger = call_grammar(call.tools)
                raw = replace(raw, grammar=grammar, grammar_trigger=trigger)
                shape = ToolChatShape(model, call.include_usage, logprobs=call.raw.logprobs)
            offered = [f.definition for f in call.tools.functions] if call.tools is not None else None
            prompt = render_chat(template, call.messages, offered)
        except ToolsUnsupported as exc:
            return _reply(ErrorReply(400, error_body(str(exc), "invalid_request_error", "tools")))
        except ChatRejected as exc:
            return _reply(ErrorReply(400, error_body(str(exc), "invalid_request_error", "messages")))
        except BrokenChatTemplate as exc:
            log.warning("model %s: %s", model, exc)
            return _reply(ErrorReply(500, error_body(f"model {model!r}: {exc}", "server_error")))
        return await self._answer(request, replace(raw, prompt=prompt), shape, call.stream)

    async def _answer(
        self, request: web.Request, raw: RawRequest, shape: CompletionShape, stream: bool
    ) -> web.StreamResponse:
        # The answer's id doubles as the swarm's request id, so logs and Redis keys name it too.
        # generate() is an async generator function, whatever its declared type: it has aclose().
        generation = self._service.generate(
            replace(raw, request_id=shape.id),
            caller_key(request),
            whole_answer=not stream,
            access=caller_access(request),
        )
        events = cast(AsyncGenerator[GenerationEvent, None], generation)
        # Closing the iterator early cancels the generation: a client gone mid-stream frees its slot.
        # Reading it to its end (past Finished) tells the swarm the answer was delivered.
        async with contextlib.aclosing(events):
            # Wait for the first event before answering, so that a bad field, an unknown model
            # or a full queue still gets its own HTTP status rather than a broken stream.
            first = await anext(events)
            if not stream:
                return await self._whole(shape, first, events)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(request)
            try:
                await self._stream(response, shape, first, events)
            except ConnectionError:
                log.info("the client of %s hung up mid-stream: cancelling it", shape.id)
            return response

    async def _whole(
        self, shape: CompletionShape, first: GenerationEvent, events: AsyncIterator[GenerationEvent]
    ) -> web.Response:
        pieces: list[TextPiece] = []
        finished: Finished | None = None
        for event in [first, *[e async for e in events]]:
            if isinstance(event, Finished):
                finished = event
            else:
                pieces.append(event)
        if finished is None:
            raise SwarmError(ErrorCode.INTERNAL, "the generation ended without finishing")
        logprobs = [lp for p in pieces for lp in p.logprobs]
        return web.json_response(shape.body("".join(p.text for p in pieces), finished, logprobs))

    async def _stream(
        self,
        response: web.StreamResponse,
        shape: CompletionShape,
        first: GenerationEvent,
        events: AsyncIterator[GenerationEvent],
    ) -> None:
        sent_chars = 0

        def chunks(event: GenerationEvent) -> list[dict[str, Any]]:
            nonlocal sent_chars
            if isinstance(event, Finished):
                return shape.final_chunks(event)
            made = shape.text_chunks(event.text, event.logprobs, sent_chars)
            sent_chars += len(event.text)
            return made

        try:
            for chunk in [*shape.opening_chunks(), *chunks(first)]:
                await response.write(_sse(chunk))
            async for event in events:
                for chunk in chunks(event):
                    await response.write(_sse(chunk))
        except ConnectionError:
            raise  # the client hung up: nobody is left to tell
        except Exception as exc:
            # The headers are gone: the error travels as an event, which OpenAI's clients raise.
            await response.write(_sse(openai_error(exc, f"streaming {shape.id}").body))
            return
        await response.write(_sse("[DONE]"))
        await response.write_eof()
