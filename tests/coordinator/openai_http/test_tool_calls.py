"""Tool calling's pure parts: reading tools and tool_choice, the calls' grammar, and the calls read back out of
an answer's text however it is cut into pieces."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from swarm.coordinator.openai_http.requests import parse_chat, parse_completion
from swarm.coordinator.openai_http.tool_dialect import (
    ToolCallReader,
    ToolsUnsupported,
    call_grammar,
    check_template_calls_tools,
    rename_rule,
)
from swarm.coordinator.openai_http.tool_request import parse_tools
from swarm.shared.grammar_check import check_grammar
from swarm.shared.validation import InvalidRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], **fields}


def test_tools_and_choice_are_read_with_their_defaults() -> None:
    tools = parse_tools(chat(tools=[WEATHER, TIME]))
    assert tools is not None and tools.choice == "auto" and tools.parallel and not tools.must_call
    assert [f.name for f in tools.callable_functions()] == ["get_weather", "get_time"]
    named = parse_tools(chat(tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}}))
    assert named is not None and named.must_call and [f.name for f in named.callable_functions()] == ["get_time"]
    assert not named.parallel  # a forced function is called once
    assert parse_tools(chat(tools=[WEATHER], tool_choice="none")) is None
    assert parse_tools(chat()) is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tools": "get_weather"}, "tools"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
        ),
        ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "tools"),
        ({"messages": [{"role": "tool", "content": "12 C"}]}, "messages[0].tool_call_id"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]},
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_bad_tool_fields_are_refused_by_name(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_chat(chat(**fields))
    assert refused.value.field == field


def test_completions_refuse_tools() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_completion({"prompt": "x", "tools": [WEATHER]})
    assert refused.value.field == "tools"


def test_an_unenforceable_parameter_schema_is_refused_naming_its_place() -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "minProperties": 1}}}
    tools = parse_tools(chat(tools=[WEATHER, bad]))
    assert tools is not None
    with pytest.raises(InvalidRequest) as refused:
        call_grammar(tools)
    assert refused.value.field == "tools[1].function.parameters"


def test_templates_without_hermes_tool_calls_are_refused() -> None:
    check_template_calls_tools("{% if tools %}...<tool_call>{% endif %}", "qwen")
    with pytest.raises(ToolsUnsupported, match="defines no tool calls"):
        check_template_calls_tools("{% for message in messages %}{{ message.content }}{% endfor %}", "gemma")
    with pytest.raises(ToolsUnsupported, match="does not read yet"):
        check_template_calls_tools("{% if tools %}[TOOL_CALLS]{% endif %}", "mistral")


def test_renaming_a_rule_leaves_literals_classes_and_comments_alone() -> None:
    gbnf = 'root ::= "root" [root] root-x # root\nx ::= root'
    assert rename_rule(gbnf, "root", "top") == 'top ::= "root" [root] root-x # root\nx ::= top'


@pytest.mark.parametrize("choice", ["auto", "required", {"type": "function", "function": {"name": "get_time"}}])
@pytest.mark.parametrize("parallel", [True, False])
def test_the_calls_grammar_parses_and_is_lazy_only_when_the_model_may_answer_in_text(
    choice: Any, parallel: bool
) -> None:
    tools = parse_tools(chat(tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=parallel))
    assert tools is not None
    grammar, trigger = call_grammar(tools)
    check_grammar(grammar)
    assert trigger == ("<tool_call>" if choice == "auto" else "")
    assert ('("\\n" swarm-tool-call)*' in grammar) is (parallel and not isinstance(choice, dict))


ANSWER = (
    'Let me look that up.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
)


def read_in_pieces(text: str, cuts: list[int]) -> tuple[str, list[tuple[str, str]]]:
    reader = ToolCallReader()
    content, calls = [], []
    for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
        piece_content, piece_calls = reader.feed(text[start:end])
        content.append(piece_content)
        calls += [(c.name, c.arguments) for c in piece_calls]
    content.append(reader.finish())
    return "".join(content), calls


def test_calls_are_read_the_same_however_the_text_is_cut() -> None:
    expected = ("Let me look that up.\n", [("get_weather", '{"city": "Oslo"}'), ("get_time", "{}")])
    assert read_in_pieces(ANSWER, []) == expected
    rng = random.Random(1)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(ANSWER)), rng.randint(1, 30)))
        assert read_in_pieces(ANSWER, cuts) == expected


def test_text_without_calls_and_a_call_cut_short_come_out_as_text() -> None:
    assert read_in_pieces("a < b and <tool", [3, 11]) == ("a < b and <tool", [])
    cut_short = 'Sure <tool_call>\n{"name": "get_time", "argu'
    assert read_in_pieces(cut_short, [7]) == (cut_short, [])
    not_json = "<tool_call>not json</tool_call> done"
    assert read_in_pieces(not_json, []) == (not_json, [])


def test_a_call_reads_back_the_arguments_it_was_given() -> None:
    reader = ToolCallReader()
    arguments = {"city": "Zürich", "days": 3}
    _, calls = reader.feed(f"<tool_call>\n{json.dumps({'name': 'get_weather', 'arguments': arguments})}\n</tool_call>")
    assert json.loads(calls[0].arguments) == arguments and calls[0].id.startswith("call_")
