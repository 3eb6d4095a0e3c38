"""Reads a chat request's `tools`, `tool_choice` and `parallel_tool_calls` into a ToolRequest, naming bad fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarm.shared.validation import InvalidRequest

# OpenAI's rule for function names.
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TOOLS = 128
# A function without parameters takes an empty object, as OpenAI calls it.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True)
class FunctionTool:
    name: str
    parameters: Mapping[str, Any]  # the JSON schema its arguments must match
    definition: Mapping[str, Any]  # the tool as the client sent it, for the chat template to show the model


@dataclass(frozen=True)
class ToolRequest:
    """The functions a chat offers the model and what it must do with them."""

    functions: tuple[FunctionTool, ...]
    # "auto": the model may answer or call; "required": it must call one or more;
    # a function's name: it must call that one. ("none" is no ToolRequest at all.)
    choice: str
    parallel: bool = True  # several calls in one answer

    @property
    def must_call(self) -> bool:
        return self.choice != "auto"

    def callable_functions(self) -> tuple[FunctionTool, ...]:
        """The functions the answer may call: all of them, or the one tool_choice names."""
        if self.choice in ("auto", "required"):
            return self.functions
        return tuple(f for f in self.functions if f.name == self.choice)


def parse_tools(body: Mapping[str, Any]) -> ToolRequest | None:
    """The chat's tools; None when it offers none or tool_choice is "none"."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools is None or tools == []:
        if choice not in (None, "none", "auto"):
            raise InvalidRequest("tool_choice", "needs tools to choose from")
        return None
    if not isinstance(tools, list):
        raise InvalidRequest("tools", "must be a list of tools")
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest("tools", f"at most {MAX_TOOLS} tools are supported")
    functions = tuple(_function(tool, f"tools[{i}]") for i, tool in enumerate(tools))
    names = [f.name for f in functions]
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise InvalidRequest("tools", f"two functions are named {repeated!r}")
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise InvalidRequest("parallel_tool_calls", "must be true or false")
    resolved = _choice(choice, names)
    if resolved == "none":
        return None
    # Forcing a function asks for exactly one call of it, as OpenAI's forced function does.
    return ToolRequest(functions, resolved, parallel and resolved in ("auto", "required"))


def _function(tool: Any, where: str) -> FunctionTool:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise InvalidRequest(f"{where}.type", 'must be "function" (the only kind of tool supported)')
    function = tool.get("function")
    if not isinstance(function, dict):
        raise InvalidRequest(f"{where}.function", "must be an object with a name")
    name = function.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
        raise InvalidRequest(f"{where}.function.name", "must be 1-64 characters of a-z, A-Z, 0-9, _ and -")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest(f"{where}.function.description", "must be a string")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"{where}.function.strict", "must be true or false")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = NO_PARAMETERS
    elif not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise InvalidRequest(f"{where}.function.parameters", 'must be a JSON schema of "type": "object"')
    return FunctionTool(name, parameters, tool)


def _choice(choice: Any, names: list[str]) -> str:
    if choice is None:
        return "auto"
    if choice in ("none", "auto", "required"):
        return str(choice)
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if name in names:
            return str(name)
        raise InvalidRequest("tool_choice.function.name", f"{name!r} is not among the tools' functions")
    raise InvalidRequest(
        "tool_choice", 'must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}'
    )
