"""response_format and the `grammar` extension in OpenAI bodies: the GBNF each asks for, the field named when bad."""

from __future__ import annotations

from typing import Any

import pytest

from swarm.coordinator.openai_http.requests import parse_chat, parse_completion
from swarm.shared.json_schema_grammar import json_object_grammar, schema_grammar
from swarm.shared.validation import InvalidRequest

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
MESSAGES = [{"role": "user", "content": "hi"}]


def test_each_kind_of_response_format_and_a_grammar_become_the_request_s_grammar() -> None:
    json_schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    assert parse_chat({"messages": MESSAGES, "response_format": json_schema}).raw.grammar == schema_grammar(SCHEMA, "")
    assert parse_completion({"prompt": "x", "response_format": {"type": "json_object"}}).raw.grammar == (
        json_object_grammar()
    )
    assert parse_completion({"prompt": "x", "response_format": {"type": "text"}}).raw.grammar == ""
    assert parse_completion({"prompt": "x", "grammar": 'root ::= "a"'}).raw.grammar == 'root ::= "a"'
    assert parse_completion({"prompt": "x"}).raw.grammar == ""


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": "json"}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}},
            "response_format.json_schema.name",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": SCHEMA, "strict": "yes"},
                }
            },
            "response_format.json_schema.strict",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": {"type": "integer", "maximum": 9}},
                }
            },
            "response_format.json_schema.schema",
        ),
        ({"grammar": 7}, "grammar"),
        ({"grammar": 'root ::= "a"', "response_format": {"type": "json_object"}}, "grammar"),
    ],
)
def test_a_bad_output_format_is_refused_naming_its_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_chat({"messages": MESSAGES, **extra})
    assert refused.value.field == field
