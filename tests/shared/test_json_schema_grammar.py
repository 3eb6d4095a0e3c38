"""Schemas into GBNF: what converts, the keyword and place named for what the grammar could not enforce,
and llama.cpp's parser refusing a broken grammar; pure checks, no model."""

from __future__ import annotations

import random
from typing import Any

import pytest

from swarm.shared.grammar_check import MAX_NESTING, check_grammar
from swarm.shared.json_schema_grammar import MAX_REPETITION, json_object_grammar, schema_grammar
from swarm.shared.validation import InvalidRequest
from tests.json_schemas import random_schema

FIELD = "response_format.json_schema.schema"


def test_every_schema_of_the_test_set_converts_to_a_grammar_llama_cpp_parses() -> None:
    rng = random.Random(1)
    for _ in range(40):
        check_grammar(schema_grammar(random_schema(rng), FIELD))
    check_grammar(json_object_grammar())


@pytest.mark.parametrize(
    ("schema", "where", "named"),
    [
        ({"type": "integer", "minimum": 3}, FIELD, "minimum"),
        (
            {"type": "object", "properties": {"age": {"type": "number", "multipleOf": 2}}},
            f"{FIELD}.properties.age",
            "multipleOf",
        ),
        (
            {"type": "array", "items": {"type": "string", "pattern": "a+", "maxLength": 3}},
            f"{FIELD}.items",
            "minLength/maxLength",
        ),
        ({"type": "string", "format": "email"}, f"{FIELD}.format", "email"),
        ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, f"{FIELD}.required", "'b'"),
        ({"anyOf": [{"type": "integer"}], "type": "string"}, FIELD, "'anyOf' cannot be combined"),
        ({"$ref": "https://example.com/schema.json"}, f"{FIELD}.$ref", "inside the schema"),
        (
            {"type": "array", "items": {"type": "integer"}, "maxItems": MAX_REPETITION + 1},
            f"{FIELD}.maxItems",
            "at most",
        ),
        ({"type": ["object", "null"], "properties": {"a": {}}}, f"{FIELD}.type", "list of types"),
        ({"not": {"type": "null"}}, FIELD, "'not'"),
        ({"type": "object", "properties": {"a": True}}, f"{FIELD}.properties.a", "true/false"),
        ([1, 2], FIELD, "JSON schema object"),
    ],
)
def test_what_the_grammar_could_not_enforce_is_refused_naming_keyword_and_place(
    schema: Any, where: str, named: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        schema_grammar(schema, FIELD)
    assert refused.value.field == where
    assert named in str(refused.value)


def test_annotations_and_local_references_are_accepted() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Point",
        "description": "a point",
        "$defs": {"coordinate": {"type": "number", "description": "metres"}},
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/coordinate"}, "y": {"$ref": "#/$defs/coordinate"}},
        "required": ["x", "y"],
        "additionalProperties": False,
    }
    check_grammar(schema_grammar(schema, FIELD))


@pytest.mark.parametrize(
    "grammar",
    [
        "root ::= undefined-rule",
        'root ::= ("a"',
        'root ::= root "a"',
        'other ::= "a"',
        "(" * (MAX_NESTING + 1) + '"a"' + ")" * (MAX_NESTING + 1),
    ],
)
def test_a_grammar_llama_cpp_cannot_run_is_refused_naming_the_field(grammar: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_grammar(f"root ::= {grammar}" if grammar.startswith("(") else grammar)
    assert refused.value.field == "grammar"


def test_parentheses_inside_literals_classes_and_comments_do_not_count_as_nesting() -> None:
    literal = '"' + "(" * (MAX_NESTING + 1) + '"'
    check_grammar(f"root ::= {literal} [(] # {'(' * (MAX_NESTING + 1)}\n")
