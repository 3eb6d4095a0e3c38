"""The JSONL files of `swarm batch`: requests in (one JSON object a line), results out, in input order."""

from __future__ import annotations

import json
import math
from typing import Any

from swarm.shared.batch_types import BatchLine, BatchResult
from swarm.shared.batch_validation import InvalidBatchLine, check_batch_line
from swarm.shared.output_format import output_grammar
from swarm.shared.types import RawRequest
from swarm.shared.validation import InvalidRequest, RequestLimits

_INT_FIELDS = ("max_tokens", "top_k", "seed")
_FLOAT_FIELDS = ("temperature", "top_p", "min_p", "repeat_penalty")
_STR_FIELDS = ("prompt", "model", "id")
# grammar (GBNF) or response_format (OpenAI's json_object / json_schema) hold each answer to a shape.
KNOWN_FIELDS = frozenset({*_INT_FIELDS, *_FLOAT_FIELDS, *_STR_FIELDS, "stop", "grammar", "response_format"})


def parse_batch_file(text: str, limits: RequestLimits | None = None) -> list[BatchLine]:
    """Every line of `text` as a request, checked as the coordinator will check it.

    Blank lines at the end are ignored; any other blank line is an error, so that line
    numbers in messages and results are the file's own.
    """
    rows = text.splitlines()
    while rows and not rows[-1].strip():
        rows.pop()
    if not rows:
        raise InvalidBatchLine(1, "the file holds no request")
    return [parse_batch_line(row, number, limits or RequestLimits()) for number, row in enumerate(rows, start=1)]


def parse_batch_line(row: str, number: int, limits: RequestLimits) -> BatchLine:
    if not row.strip():
        raise InvalidBatchLine(number, "is empty (one JSON object per line)")
    try:
        data = json.loads(row)
    except json.JSONDecodeError as exc:
        raise InvalidBatchLine(number, f"is not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise InvalidBatchLine(number, "must be a JSON object")
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise InvalidBatchLine(number, f"{unknown[0]}: unknown field (known: {', '.join(sorted(KNOWN_FIELDS))})")
    fields: dict[str, Any] = {}
    for name in _STR_FIELDS:
        if data.get(name) is not None:
            fields[name] = _typed(data[name], str, "a string", number, name)
    for name in _INT_FIELDS:
        if data.get(name) is not None:
            value = _typed(data[name], int, "an integer", number, name)
            if value < 0:
                raise InvalidBatchLine(number, f"{name}: must be >= 0, got {value}")
            fields[name] = value
    for name in _FLOAT_FIELDS:
        if data.get(name) is not None:
            value = float(_typed(data[name], (int, float), "a number", number, name))
            if not math.isfinite(value):
                raise InvalidBatchLine(number, f"{name}: must be a finite number")
            fields[name] = value
    stop = data.get("stop")
    if isinstance(stop, str):
        fields["stop"] = (stop,)
    elif stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidBatchLine(number, "stop: must be a string or a list of strings")
        fields["stop"] = tuple(stop)
    try:
        grammar = output_grammar(data)
    except InvalidRequest as exc:
        raise InvalidBatchLine(number, str(exc)) from None
    if grammar:
        fields["grammar"] = grammar
    custom_id = fields.pop("id", "")
    line = BatchLine(RawRequest(**fields), custom_id)
    check_batch_line(line, number, limits)
    return line


def _typed(value: Any, kind: type | tuple[type, ...], what: str, number: int, name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidBatchLine(number, f"{name}: must be {what}, got {json.dumps(value)}")
    return value


def result_to_json_line(result: BatchResult) -> str:
    record: dict[str, Any] = {"line": result.line, "id": result.custom_id}
    if result.error:
        record["error"] = result.error
    else:
        record["text"] = result.text
        record["finish_reason"] = result.finish_reason.value if result.finish_reason else None
        record["usage"] = {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        }
    return json.dumps(record, ensure_ascii=False)
