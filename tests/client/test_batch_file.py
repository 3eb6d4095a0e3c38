"""Batch JSONL files: every line is checked before anything is sent; errors name the line and the field."""

from __future__ import annotations

import json

import pytest

from swarm.client.batch_file import parse_batch_file, result_to_json_line
from swarm.shared.batch_types import BatchLine, BatchResult
from swarm.shared.batch_validation import InvalidBatchLine
from swarm.shared.json_schema_grammar import schema_grammar
from swarm.shared.types import FinishReason, RawRequest


def test_lines_become_requests_with_their_custom_ids() -> None:
    text = (
        '{"prompt": "a", "max_tokens": 4, "temperature": 0, "stop": "\\n", "seed": 7, "id": "first"}\n'
        '{"prompt": "b", "model": "tiny", "stop": ["x", "y"], "top_p": 0.5}\n'
        "\n"
    )
    assert parse_batch_file(text) == [
        BatchLine(RawRequest(prompt="a", max_tokens=4, temperature=0.0, stop=("\n",), seed=7), "first"),
        BatchLine(RawRequest(prompt="b", model="tiny", stop=("x", "y"), top_p=0.5)),
    ]


def test_a_line_may_hold_its_answer_to_a_schema_or_a_grammar() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    text = (
        json.dumps({"prompt": "a", "response_format": response_format})
        + "\n"
        + json.dumps({"prompt": "b", "grammar": 'root ::= "yes" | "no"'})
        + "\n"
    )
    lines = parse_batch_file(text)
    assert lines[0].request.grammar == schema_grammar(schema, "schema")
    assert lines[1].request.grammar == 'root ::= "yes" | "no"'


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"prompt": "x", "temperature": -1}', "line 2: temperature: must be >= 0"),
        ('{"prompt": ""}', "line 2: prompt: must not be empty"),
        ('{"max_tokens": 3}', "line 2: prompt: must not be empty"),
        ('{"prompt": "x", "max_tokens": "4"}', 'line 2: max_tokens: must be an integer, got "4"'),
        ('{"prompt": "x", "max_tokens": true}', "line 2: max_tokens: must be an integer, got true"),
        ('{"prompt": "x", "seed": -3}', "line 2: seed: must be >= 0, got -3"),
        ('{"prompt": "x", "top_k": 1099511627776}', "line 2: top_k: must be in [0, 4294967295]"),
        ('{"prompt": "x", "max_tokens": 4294967296}', "line 2: max_tokens: must be in [0, 4294967295]"),
        ('{"prompt": "x", "seed": 18446744073709551616}', "line 2: seed: must be in [0, 18446744073709551615]"),
        ('{"prompt": "x", "min_p": 0.99999999}', "line 2: min_p: must be in [0, 1) as a 32-bit float"),
        ('{"prompt": "x", "stop": [1]}', "line 2: stop: must be a string or a list of strings"),
        ('{"prompt": "x", "promt": "y"}', "line 2: promt: unknown field"),
        ('{"prompt": "x", "grammar": 3}', "line 2: grammar: must be a string of GBNF"),
        ('{"prompt": "x", "response_format": {"type": "xml"}}', "line 2: response_format.type: must be text"),
        (
            '{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "p", '
            '"schema": {"type": "integer", "minimum": 3}}}}',
            "line 2: response_format.json_schema.schema: the keyword 'minimum' is not supported",
        ),
        ('{"prompt": "x", "id": "has space"}', "line 2: id: must be 1-64 chars"),
        ('{"prompt": "x",', "line 2: is not JSON"),
        ('["prompt"]', "line 2: must be a JSON object"),
        ("", "line 2: is empty"),
    ],
)
def test_a_bad_line_is_named_with_its_field(row: str, message: str) -> None:
    with pytest.raises(InvalidBatchLine) as caught:
        parse_batch_file(f'{{"prompt": "fine"}}\n{row}\n{{"prompt": "fine too"}}\n')
    assert str(caught.value).startswith(message)
    assert caught.value.line == 2


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidBatchLine, match="holds no request"):
        parse_batch_file("\n\n")


def test_results_are_one_json_object_a_line() -> None:
    done = BatchResult(3, "q3", "Paris", FinishReason.STOP, prompt_tokens=5, completion_tokens=2)
    assert json.loads(result_to_json_line(done)) == {
        "line": 3,
        "id": "q3",
        "text": "Paris",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    failed = BatchResult(4, "", error="INVALID_ARGUMENT: max_tokens: too many")
    assert json.loads(result_to_json_line(failed)) == {"line": 4, "id": "", "error": failed.error}
