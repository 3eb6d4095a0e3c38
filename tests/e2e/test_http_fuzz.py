"""JSON bodies of any shape, text and numbers against the OpenAI HTTP API of one running swarm: every answer is
a 2xx or a 4xx naming the problem, never a 500 or a hung request, and nothing is left running afterwards."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import wait_until
from tests.conftest import RunningSwarm
from tests.coordinator.test_metrics import scrape, value
from tests.e2e.test_openai_api import CHATML_TEMPLATE

pytestmark = pytest.mark.timeout(300)

CLIENT_TIMEOUT_S = 20  # a request unanswered by then is a hung request
CLIENT_ERRORS = {400, 404, 413, 422, 429}

texts = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec=None, categories=["Cs", "Co", "Cc", "Zs", "Lo"]), max_size=20),  # surrogates too
    st.sampled_from(["", "Hi \ud800", "\udfff", "\x00", "x" * 300]),
)
numbers = st.one_of(
    st.integers(),
    st.integers(-3, 5),
    st.sampled_from([2**31, 2**32 - 1, 2**32, 2**40, 2**63, 2**64 - 1, 2**64, -(2**63), 10**30]),
    st.floats(),  # NaN and infinities travel as JSON's NaN/Infinity extensions, which Python's json reads
    st.floats(-2.0, 12.0),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
small = st.integers(1, 3)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "robot", 5])},
        optional={"content": st.one_of(texts, json_values), "name": st.one_of(texts, numbers)},
    ),
    max_size=3,
)
# The fields the API knows, each with any value; max_tokens mostly small, so generations stay short.
known_fields = st.fixed_dictionaries(
    {"max_tokens": st.one_of(small, numbers, scalars)},
    optional={
        "model": st.one_of(st.sampled_from(["", "tiny-chat", "nope"]), scalars),
        "prompt": st.one_of(texts, st.lists(texts, max_size=2), json_values),
        "messages": st.one_of(messages, json_values),
        "temperature": st.one_of(numbers, scalars),
        "top_p": st.one_of(numbers, scalars),
        "top_k": numbers,
        "min_p": numbers,
        "repeat_penalty": numbers,
        "seed": numbers,
        "n": numbers,
        "stop": st.one_of(texts, st.lists(texts, max_size=10), json_values),
        "stream": st.one_of(st.booleans(), scalars),
        "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": scalars}), json_values),
        "max_completion_tokens": st.one_of(small, numbers),
        "logprobs": scalars,
        "top_logprobs": numbers,
        "input": st.one_of(texts, st.lists(st.one_of(texts, numbers), max_size=3), json_values),
        "encoding_format": st.one_of(st.sampled_from(["float", "base64"]), scalars),
        "dimensions": numbers,
        "user": texts,
    },
)
plausible = st.fixed_dictionaries(
    {
        "prompt": st.text(min_size=1, max_size=40),
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.just("user"), "content": st.text(max_size=40)}), min_size=1, max_size=2
        ),
        "max_tokens": small,
    },
    optional={
        "temperature": st.floats(0.0, 2.0),
        "top_k": st.integers(0, 50),
        "seed": st.integers(0, 2**64 - 1),
        "stream": st.booleans(),
        "stop": st.lists(st.text(min_size=1, max_size=4), max_size=2),
    },
)
bodies = st.one_of(
    known_fields.map(lambda body: json.dumps(body).encode()),
    plausible.map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=60),
    st.sampled_from([b"", b"[" * 5000, b'{"prompt": ' + b"[" * 3000 + b"]" * 3000 + b"}", b'{"prompt": "\\ud800"}']),
)


@pytest.fixture
def fuzzed_swarm(make_swarm: Any, tmp_path: Path) -> Iterator[RunningSwarm]:
    """One worker on a model with a chat template, so both endpoints can answer 200."""
    model = write_tiny_llama(tmp_path / "tiny-chat.gguf", chat_template=CHATML_TEMPLATE)
    yield make_swarm(workers=1, model=model)


def post(swarm: RunningSwarm, path: str, body: bytes) -> tuple[int, bytes]:
    host, port = swarm.http.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=CLIENT_TIMEOUT_S)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()  # the whole answer, a stream to its end
    finally:
        connection.close()


def check_stream(data: bytes) -> None:
    """A 200 stream: events of JSON ending in [DONE], or an error event naming a client's problem."""
    events = [line.removeprefix(b"data: ") for line in data.split(b"\n\n") if line.startswith(b"data: ")]
    assert events, data
    last = events[-1]
    if last == b"[DONE]":
        return
    error = json.loads(last)["error"]
    assert error["type"] != "server_error", error


def check_error(status: int, data: bytes) -> None:
    error = json.loads(data)["error"]
    assert error["message"], error
    assert status in CLIENT_ERRORS, f"{status}: {error}"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(path=st.sampled_from(["/v1/completions", "/v1/chat/completions", "/v1/embeddings"]), body=bodies)
def test_every_answer_is_a_2xx_or_a_4xx_naming_the_problem(fuzzed_swarm: RunningSwarm, path: str, body: bytes) -> None:
    swarm = fuzzed_swarm
    status, data = post(swarm, path, body)
    event(str(status))  # --hypothesis-show-statistics shows the mix of answers
    if status == 200:
        if data.startswith(b"data: "):
            check_stream(data)
        else:
            answer = json.loads(data)
            assert answer["data"] if path == "/v1/embeddings" else answer["choices"], data
    else:
        check_error(status, data)
    wait_until(lambda: value(scrape(swarm.http), "swarm_requests_in_progress") == 0, 10, "no request left in progress")
    assert swarm.coordinator.alive
