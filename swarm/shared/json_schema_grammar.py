"""Turns a JSON schema (or "any JSON object") into the GBNF grammar a worker's sampler enforces.

The conversion is llama-cpp-python's own (llama_cpp.llama_grammar, pure Python; importing it loads
libllama, so it is imported on first use only). That converter silently ignores keywords it cannot
express, which would let output through that the schema forbids; so every keyword is checked first,
and one it would ignore is refused with its place in the schema, rather than promised and not kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from swarm.shared.validation import InvalidRequest

# Keywords the converter turns into grammar, and ones that never constrain a value.
_ENFORCED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "$ref",
        "$defs",
        "definitions",
        "pattern",
        "format",
        "minLength",
        "maxLength",
    }
)
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"}
)
_FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
# Keywords whose node the converter reads alone (a union, a reference): others beside them would be ignored.
_ALONE = ("$ref", "anyOf", "oneOf")
# A string's character as the converter writes it, and as JSON allows it (no control characters, no DEL).
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'
# Each repetition bound becomes nested grammar rules: bounded so a schema cannot ask for a huge grammar.
MAX_REPETITION = 256


def json_object_grammar() -> str:
    """Any JSON object (OpenAI's response_format json_object)."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return str(JSON_GBNF)


def schema_grammar(schema: Any, field: str) -> str:
    """The GBNF for `schema`, or InvalidRequest naming `field` and the keyword the swarm cannot enforce."""
    if not isinstance(schema, dict):
        raise InvalidRequest(field, "must be a JSON schema object")
    for where, node in _subschemas(schema, field):
        _check_node(node, where)
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = str(json_schema_to_gbnf(json.dumps(schema)))
    except (AssertionError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise InvalidRequest(field, f"cannot be turned into a grammar: {exc}") from None
    # The converter lets a string hold raw control characters (a newline, a tab), which JSON forbids: a
    # model that wrote one made an answer no parser accepts. Its character rule is held to JSON's.
    return grammar.replace(_LOOSE_CHAR, _JSON_CHAR)


def _subschemas(schema: Any, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with its path, iteratively (the body's nesting is bounded already)."""
    pending: list[tuple[str, Any]] = [(where, schema)]
    while pending:
        path, node = pending.pop()
        if not isinstance(node, dict):
            raise InvalidRequest(path, "must be a schema object (true/false schemas are not supported here)")
        yield path, node
        for key in ("properties", "$defs", "definitions"):
            children = node.get(key, {})
            if not isinstance(children, dict):
                raise InvalidRequest(f"{path}.{key}", "must be an object of schemas")
            pending.extend((f"{path}.{key}.{name}", child) for name, child in children.items())
        for key in ("prefixItems", "anyOf", "oneOf"):
            children = node.get(key, [])
            if not isinstance(children, list) or (key in node and not children):
                raise InvalidRequest(f"{path}.{key}", "must be a non-empty list of schemas")
            pending.extend((f"{path}.{key}[{i}]", child) for i, child in enumerate(children))
        items = node.get("items")
        if isinstance(items, list):
            pending.extend((f"{path}.items[{i}]", child) for i, child in enumerate(items))
        elif items is not None:
            pending.append((f"{path}.items", items))
        extra = node.get("additionalProperties")
        if extra is not None and not isinstance(extra, bool):
            pending.append((f"{path}.additionalProperties", extra))


def _check_node(node: Mapping[str, Any], where: str) -> None:
    for key in node:
        if key not in _ENFORCED and key not in _ANNOTATIONS:
            raise InvalidRequest(where, f"the keyword {key!r} is not supported (the grammar could not enforce it)")
    constraining = {key for key in node if key in _ENFORCED and key not in ("$defs", "definitions")}
    for alone in _ALONE:
        if alone in node and constraining - {alone}:
            others = ", ".join(sorted(constraining - {alone}))
            raise InvalidRequest(where, f"{alone!r} cannot be combined with {others} here")
    kind = node.get("type")
    if isinstance(kind, list):
        if not kind or any(t not in _TYPES for t in kind):
            raise InvalidRequest(f"{where}.type", f"must name JSON types among {', '.join(sorted(_TYPES))}")
        if constraining - {"type", "enum", "const"}:
            raise InvalidRequest(f"{where}.type", "a list of types cannot be combined with other keywords here")
    elif kind is not None and kind not in _TYPES:
        raise InvalidRequest(f"{where}.type", f"must be one of {', '.join(sorted(_TYPES))}")
    ref = node.get("$ref")
    if ref is not None and (not isinstance(ref, str) or not ref.startswith("#/")):
        raise InvalidRequest(f"{where}.$ref", "only references inside the schema (#/...) are supported")
    fmt = node.get("format")
    if fmt is not None and fmt not in _FORMATS:
        raise InvalidRequest(f"{where}.format", f"{fmt!r} is not supported (only {', '.join(sorted(_FORMATS))})")
    if ("minLength" in node or "maxLength" in node) and (kind != "string" or "pattern" in node or fmt):
        raise InvalidRequest(where, "minLength/maxLength apply only to a plain {'type': 'string'} here")
    for key in ("minItems", "maxItems", "minLength", "maxLength"):
        bound = node.get(key)
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < 0):
            raise InvalidRequest(f"{where}.{key}", "must be a non-negative integer")
        if bound is not None and bound > MAX_REPETITION:
            raise InvalidRequest(f"{where}.{key}", f"at most {MAX_REPETITION} is supported")
    required = node.get("required", [])
    properties = node.get("properties", {})
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise InvalidRequest(f"{where}.required", "must be a list of property names")
    missing = [name for name in required if name not in properties]
    if missing:
        raise InvalidRequest(f"{where}.required", f"{missing[0]!r} is not among the schema's properties")
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        raise InvalidRequest(f"{where}.enum", "must be a non-empty list")
