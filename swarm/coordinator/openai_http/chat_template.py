"""Renders a chat into a prompt with the model's own chat template (the GGUF's Jinja tokenizer.chat_template)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


@dataclass(frozen=True)
class PastToolCall:
    """A call an earlier assistant turn made, as the chat repeats it."""

    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it

    def for_template(self) -> dict[str, Any]:
        # Templates (Qwen's, Hermes's) write arguments with `tojson`: an object, as Transformers passes it.
        try:
            arguments: Any = json.loads(self.arguments)
        except json.JSONDecodeError:
            arguments = self.arguments
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    name: str = ""
    tool_calls: tuple[PastToolCall, ...] = ()  # an assistant turn's calls
    tool_call_id: str = ""  # a tool turn: the call it answers

    def for_template(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name:
            message["name"] = self.name
        if self.tool_calls:
            message["tool_calls"] = [call.for_template() for call in self.tool_calls]
        if self.tool_call_id:
            message["tool_call_id"] = self.tool_call_id
        return message


class ChatRejected(ValueError):
    """The template refused these messages (its raise_exception, or a render error they caused)."""


class BrokenChatTemplate(ValueError):
    """The template itself does not compile: the model's file is at fault, not the request."""


def _raise_exception(message: str) -> NoReturn:
    raise ChatRejected(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # As Transformers renders chat templates: non-ASCII text stays as it is.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@lru_cache(maxsize=32)
def _compile(template: str) -> jinja2.Template:
    # The environment llama-cpp-python's Jinja2ChatFormatter and Transformers use; the sandbox
    # matters because the template comes over the network from a worker.
    environment = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols],
    )
    environment.filters["tojson"] = _tojson
    try:
        return environment.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise BrokenChatTemplate(f"the chat template does not compile: {exc}") from exc


def render_chat(
    template: str, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """The prompt for the assistant's next turn; tools: the functions it may call, as OpenAI's tool objects.

    bos_token is empty: the worker's tokenizer puts BOS in front of every prompt itself (as
    llama.cpp's completion path does), so rendering it too would double it. eos_token is empty
    as workers do not report it; templates that close past assistant turns with their literal
    end-of-turn marker (Gemma, ChatML, Llama 3) are unaffected.
    """
    compiled = _compile(template)
    try:
        return compiled.render(
            messages=[m.for_template() for m in messages],
            tools=[dict(tool) for tool in tools] if tools else None,
            add_generation_prompt=True,
            bos_token="",
            eos_token="",
            raise_exception=_raise_exception,
            strftime_now=lambda fmt: datetime.now().strftime(fmt),
        )
    except ChatRejected:
        raise
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise ChatRejected(f"the chat template could not render these messages: {exc}") from exc
