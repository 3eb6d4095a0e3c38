"""The OpenAI-compatible HTTP API through a real swarm, called with the official `openai` package."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from swarm.coordinator.openai_http.chat_template import ChatMessage, render_chat
from swarm.gguf_files.synthetic_model import write_tiny_llama
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("chat") / "tiny-chat.gguf", chat_template=CHATML_TEMPLATE)


def openai_client(swarm: RunningSwarm) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://{swarm.http}/v1", api_key="unused", max_retries=0, timeout=30)


def post(swarm: RunningSwarm, path: str, data: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://{swarm.http}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_completions_equal_the_grpc_clients_greedy_text_whole_and_streamed(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    prompt = "The quick brown fox"
    with swarm.client() as client:
        expected = client.generate(prompt, max_tokens=24, temperature=0.0)
    api = openai_client(swarm)

    completion = api.completions.create(model="tiny", prompt=prompt, max_tokens=24, temperature=0)
    assert completion.choices[0].text == expected.text
    assert completion.choices[0].finish_reason == "length"
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == "tiny" and abs(completion.created - time.time()) < 60
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 24
    assert completion.usage.prompt_tokens == expected.finished.prompt_tokens
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 24

    # No model named: the swarm's default model answers, and says which it is.
    default = api.completions.create(model="", prompt=[prompt], max_tokens=24, temperature=0)
    assert default.model == "tiny" and default.choices[0].text == expected.text

    chunks = list(
        api.completions.create(
            model="tiny",
            prompt=prompt,
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected.text
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 24

    assert [m.id for m in api.models.list()] == ["tiny"]


def test_chat_renders_the_models_template_whole_and_streamed(make_swarm: MakeSwarm, chat_model: Path) -> None:
    swarm = make_swarm(workers=1, model=chat_model)
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello there")]
    with swarm.client() as client:  # what the template gives, through the gRPC API
        expected = client.generate(render_chat(CHATML_TEMPLATE, messages), max_tokens=16, temperature=0.0)
    api = openai_client(swarm)
    sent: Any = [{"role": m.role, "content": m.content} for m in messages]

    chat = api.chat.completions.create(model="tiny-chat", messages=sent, max_completion_tokens=16, temperature=0)
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content == expected.text
    assert chat.choices[0].finish_reason == "length"
    assert chat.object == "chat.completion" and chat.id.startswith("chatcmpl-")
    assert chat.usage is not None and chat.usage.prompt_tokens == expected.finished.prompt_tokens

    stream = api.chat.completions.create(model="tiny-chat", messages=sent, max_tokens=16, temperature=0, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected.text
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)

    # A stop string ends the answer early, with finish_reason "stop".
    first_word = expected.text.split()[1]
    stopped = api.chat.completions.create(
        model="tiny-chat", messages=sent, max_tokens=16, temperature=0, stop=first_word
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert expected.text.startswith(stopped.choices[0].message.content or "<none>")


def test_errors_come_back_in_openais_shape_naming_the_field(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    api = openai_client(swarm)

    with pytest.raises(openai.NotFoundError) as not_found:
        api.completions.create(model="no-such-model", prompt="Hi", max_tokens=4)
    assert not_found.value.param == "model" and "no-such-model" in not_found.value.message

    with pytest.raises(openai.BadRequestError) as two_choices:
        api.completions.create(model="tiny", prompt="Hi", max_tokens=4, n=2)
    assert two_choices.value.param == "n" and two_choices.value.type == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as too_hot:  # a range the service checks
        api.completions.create(model="tiny", prompt="Hi", max_tokens=4, temperature=50)
    assert too_hot.value.param == "temperature"

    with pytest.raises(openai.BadRequestError) as too_long:  # longer than the worker's context
        api.completions.create(model="tiny", prompt="Hi", max_tokens=100_000)
    assert too_long.value.param == "max_tokens"

    with pytest.raises(openai.BadRequestError) as no_template:
        api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert no_template.value.body == {
        "message": "model 'tiny' has no chat template; use /v1/completions",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }

    status, body = post(swarm, "/v1/completions", b'{"prompt": "Hi", ')
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == "body"
    assert "not valid JSON" in body["error"]["message"]

    status, body = post(swarm, "/v1/completions", json.dumps({"prompt": "x" * 2_000_000}).encode())
    assert status == 400 and body["error"]["param"] == "body"

    status, body = post(swarm, "/v1/chat/completions", json.dumps({"messages": [{"role": "wizard"}]}).encode())
    assert status == 400 and body["error"]["param"] == "messages[0].role"

    with urllib.request.urlopen(f"http://{swarm.http}/openapi.json", timeout=30) as response:
        document = json.loads(response.read())
    assert document["openapi"].startswith("3.")
    assert {"/v1/models", "/v1/completions", "/v1/chat/completions"} <= set(document["paths"])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_client_hanging_up_mid_stream_frees_the_slot(make_swarm: MakeSwarm, gemma_model: Path) -> None:
    # Gemma decodes slowly enough for the stream to be mid-way when the client leaves.
    swarm = make_swarm(workers=0, model=gemma_model)
    swarm.add_worker("--slots", "1", "--threads", "2", name="one-slot")
    swarm.wait_for_workers(1)
    host, port = swarm.http.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    # Counting keeps Gemma going (no early end of generation) for all 480 tokens, many seconds.
    body = {"prompt": "1, 2, 3, 4, 5, 6,", "max_tokens": 480, "temperature": 0, "stream": True}
    connection.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: {")  # streaming: the request holds the only slot
    connection.close()
    hung_up = time.monotonic()

    # The only slot frees at once; had the 400-token stream run on, this would wait for it.
    quick = openai_client(swarm).completions.create(model="", prompt="Hello", max_tokens=4, temperature=0, timeout=20)
    assert quick.usage is not None and quick.usage.completion_tokens == 4
    assert time.monotonic() - hung_up < 10.0  # the rest of the stream takes about 30 s here
