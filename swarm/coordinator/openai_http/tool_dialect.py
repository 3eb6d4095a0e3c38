"""How a model writes tool calls: which chat templates define them, the grammar holding calls to the functions'
schemas, and the calls read back out of the answer's text (whole, or piece by piece as it streams).

One dialect is spoken so far, Hermes's, which Qwen 2.5/3, Hermes and many fine-tunes use: each call is
`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` after optional text. A template that
offers `tools` and writes that marker speaks it; other templates are refused rather than misread.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarm.coordinator.openai_http.tool_request import ToolRequest
from swarm.shared.json_schema_grammar import schema_grammar

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
# A template that mentions `tools` offers the model functions; one that also writes the marker shows
# it how to call them (Qwen's does in its system prompt).
_TOOLS_VARIABLE = re.compile(r"\btools\b")
# Rule names of the wrapper around the converter's JSON rules; the converter never makes names like these.
_CALLS, _CALL, _JSON = "swarm-tool-calls", "swarm-tool-call", "swarm-tool-json"


class ToolsUnsupported(ValueError):
    """The model's chat template defines no tool calls the swarm can read."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI gives it

    def as_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def check_template_calls_tools(template: str, model: str) -> None:
    """Raises ToolsUnsupported unless `template` offers tools in the Hermes dialect."""
    if not _TOOLS_VARIABLE.search(template):
        raise ToolsUnsupported(f"model {model!r} cannot call tools: its chat template defines no tool calls")
    if CALL_OPEN not in template:
        raise ToolsUnsupported(
            f"model {model!r}'s chat template calls tools in a format the swarm does not read yet "
            f"(it reads {CALL_OPEN} ... {CALL_CLOSE})"
        )


def call_grammar(tools: ToolRequest) -> tuple[str, str]:
    """The GBNF of the calls this request allows, and its trigger: "" when a call is required (the grammar
    holds from the first token), the call marker when the model may answer in text instead."""
    for i, function in enumerate(tools.functions):  # each schema checked on its own, so an error names its place
        schema_grammar(dict(function.parameters), f"tools[{i}].function.parameters")
    alternatives = [_call_schema(f.name, f.parameters) for f in tools.callable_functions()]
    schema = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    json_rules = rename_rule(schema_grammar(schema, "tools"), "root", _JSON)
    repeat = f' ("\\n" {_CALL})*' if tools.parallel else ""
    wrapper = (
        f'root ::= {_CALLS}\n{_CALLS} ::= {_CALL}{repeat}\n{_CALL} ::= "{CALL_OPEN}\\n" {_JSON} "\\n{CALL_CLOSE}"\n'
    )
    return wrapper + json_rules, "" if tools.must_call else CALL_OPEN


def _call_schema(name: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": dict(parameters)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def rename_rule(gbnf: str, old: str, new: str) -> str:
    """gbnf with the rule `old` named `new`, where it is defined and used; "literals", [classes] and
    # comments are left as they are."""
    out: list[str] = []
    i = 0
    while i < len(gbnf):
        char = gbnf[i]
        if char in '"[#':
            end = _end_of_span(gbnf, i)
            out.append(gbnf[i:end])
            i = end
        elif char.isalnum() or char == "-":
            j = i
            while j < len(gbnf) and (gbnf[j].isalnum() or gbnf[j] == "-"):
                j += 1
            word = gbnf[i:j]
            out.append(new if word == old else word)
            i = j
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _end_of_span(gbnf: str, start: int) -> int:
    closing = {'"': '"', "[": "]", "#": "\n"}[gbnf[start]]
    i = start + 1
    while i < len(gbnf):
        if gbnf[i] == "\\" and closing != "\n":
            i += 2
            continue
        if gbnf[i] == closing:
            return i + 1
        i += 1
    return len(gbnf)


class ToolCallReader:
    """Splits an answer's text, fed piece by piece, into content the client may see at once and tool calls,
    each given whole once its closing marker arrived. Text that may be the start of a marker is held back."""

    def __init__(self) -> None:
        self._pending = ""  # text not yet given out: a possible marker's start, or a call still open
        self._in_call = False
        self.calls: list[ToolCall] = []

    def feed(self, text: str) -> tuple[str, list[ToolCall]]:
        """The content and the calls that `text` completes."""
        self._pending += text
        content: list[str] = []
        calls: list[ToolCall] = []
        while True:
            if self._in_call:
                end = self._pending.find(CALL_CLOSE)
                if end < 0:
                    break
                call = _parse_call(self._pending[:end])
                if call is None:  # not a call after all: the text goes out as it came
                    content.append(CALL_OPEN + self._pending[: end + len(CALL_CLOSE)])
                else:
                    calls.append(call)
                    self.calls.append(call)
                self._pending = self._pending[end + len(CALL_CLOSE) :]
                self._in_call = False
                continue
            start = self._pending.find(CALL_OPEN)
            if start >= 0:
                content.append(self._visible(self._pending[:start]))
                self._pending = self._pending[start + len(CALL_OPEN) :]
                self._in_call = True
                continue
            keep = _marker_prefix_length(self._pending)
            content.append(self._visible(self._pending[: len(self._pending) - keep]))
            self._pending = self._pending[len(self._pending) - keep :]
            break
        return "".join(content), calls

    def finish(self) -> str:
        """What is left once the answer ended: a call cut short, or a marker's start, goes out as text."""
        rest = (CALL_OPEN if self._in_call else "") + self._pending
        self._pending, self._in_call = "", False
        return self._visible(rest)

    def _visible(self, text: str) -> str:
        # Between and after calls only the separating whitespace comes; it is not content.
        return "" if self.calls and not text.strip() else text


def _marker_prefix_length(text: str) -> int:
    """The length of the longest end of `text` that begins CALL_OPEN."""
    for length in range(min(len(text), len(CALL_OPEN) - 1), 0, -1):
        if CALL_OPEN.startswith(text[-length:]):
            return length
    return 0


def _parse_call(body: str) -> ToolCall | None:
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return ToolCall("call_" + secrets.token_hex(12), value["name"], text)
