"""Reads what a request (an OpenAI body, a batch line) asks its output to be as GBNF: its response_format, or
llama.cpp's `grammar` field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swarm.shared.json_schema_grammar import json_object_grammar, schema_grammar
from swarm.shared.validation import InvalidRequest


def output_grammar(body: Mapping[str, Any]) -> str:
    """The GBNF the output must match ("" for free text); a bad field is an InvalidRequest naming it.

    The grammar's own syntax is checked later, by llama.cpp's parser (swarm.shared.grammar_check)."""
    grammar = body.get("grammar")
    response_format = body.get("response_format")
    if grammar is not None and not isinstance(grammar, str):
        raise InvalidRequest("grammar", "must be a string of GBNF")
    if grammar and response_format not in (None, {"type": "text"}):
        raise InvalidRequest("grammar", "give either grammar or response_format, not both")
    if grammar:
        return grammar
    if response_format is None:
        return ""
    if not isinstance(response_format, dict):
        raise InvalidRequest("response_format", "must be an object with a type")
    kind = response_format.get("type")
    if kind == "text":
        return ""
    if kind == "json_object":
        return json_object_grammar()
    if kind != "json_schema":
        raise InvalidRequest("response_format.type", "must be text, json_object or json_schema")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequest("response_format.json_schema", "must be an object with a name and a schema")
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise InvalidRequest("response_format.json_schema.name", "must be a non-empty string")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest("response_format.json_schema.strict", "must be true or false")
    # Strict or not, the grammar holds the output to the schema: the swarm has no looser mode.
    return schema_grammar(spec.get("schema", {}), "response_format.json_schema.schema")
