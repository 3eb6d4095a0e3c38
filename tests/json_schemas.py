"""Random JSON schemas from a fixed set of shapes (objects, arrays, enums, nesting, required fields), for
structured-output tests. Every string and array is bounded, so any model, even a random one, completes
an answer well within a few hundred tokens."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema

LEAVES: list[dict[str, Any]] = [
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "null"},
    {"type": "string", "maxLength": 8},
    {"type": "string", "minLength": 1, "maxLength": 4},
    {"enum": ["red", "green", "blue"]},
    {"enum": [1, "two", None, True]},
    {"const": "fixed"},
    {"type": "string", "format": "date"},
    {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 3}]},
]
NAMES = ["id", "name", "tags", "colour", "count", "inner", "ok", "note"]


def random_schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """An object schema at the top; below it objects, arrays and leaves, at most two levels deep."""
    kind = "object" if depth == 0 else rng.choice(["leaf", "leaf", "object", "array"] if depth < 2 else ["leaf"])
    if kind == "leaf":
        return dict(rng.choice(LEAVES))
    if kind == "array":
        low = rng.randint(0, 2)
        return {"type": "array", "items": random_schema(rng, depth + 1), "minItems": low, "maxItems": low + 2}
    names = rng.sample(NAMES, rng.randint(1, 4))
    properties = {name: random_schema(rng, depth + 1) for name in names}
    required = [name for name in names if rng.random() < 0.7]
    return {"type": "object", "properties": properties, "required": required}


def check_answer(text: str, schema: dict[str, Any]) -> Any:
    """The answer parsed, after checking it conforms to the schema (with the reason it does not, if not)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not JSON ({exc}): {text!r}") from None
    jsonschema.validate(value, schema)
    return value
