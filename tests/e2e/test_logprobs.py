"""Log-probabilities through real swarms: the OpenAI APIs' shapes, whole and streamed, equal to llama-cpp-python's
for the same greedy run; per piece on gRPC through a 2-stage pipeline whose last stage samples; 400s naming
the field for bad values."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from llama_cpp import Llama

from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.types import TextPiece
from tests.conftest import RunningSwarm, serving_worker

MakeSwarm = Callable[..., RunningSwarm]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PROMPT = "Hello world"
TOKENS = 10
TOLERANCE = {"rel": 2e-2, "abs": 2e-3}  # see tests/engine/test_logprobs.py

pytestmark = pytest.mark.timeout(60)


def post(swarm: RunningSwarm, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://{swarm.http}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def reference(model: Path, prompt: str, top: int) -> dict[str, Any]:
    llm = Llama(str(model), n_ctx=512, n_threads=1, logits_all=True, verbose=False)
    try:
        choice: dict[str, Any] = llm.create_completion(prompt, max_tokens=TOKENS, temperature=0.0, logprobs=top)[
            "choices"
        ][0]
    finally:
        llm.close()
    return choice


def test_completions_logprobs_whole_and_streamed_equal_llama_cpp_pythons(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    expected = reference(swarm.model, PROMPT, 3)
    body = {"prompt": PROMPT, "max_tokens": TOKENS, "temperature": 0, "logprobs": 3}
    status, whole = post(swarm, "/v1/completions", body)
    assert status == 200, whole
    api = openai.OpenAI(base_url=f"http://{swarm.http}/v1", api_key="unused", max_retries=0, timeout=30)
    streamed: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for chunk in api.completions.create(
        model="", prompt=PROMPT, max_tokens=TOKENS, temperature=0, logprobs=3, stream=True
    ):
        if chunk.choices and chunk.choices[0].logprobs is not None:
            got = chunk.choices[0].logprobs
            for key in streamed:
                streamed[key] += getattr(got, key)
    want = expected["logprobs"]
    for logprobs in (whole["choices"][0]["logprobs"], streamed):
        assert logprobs["tokens"] == want["tokens"]
        assert logprobs["text_offset"] == want["text_offset"]
        assert logprobs["token_logprobs"] == pytest.approx(want["token_logprobs"], **TOLERANCE)
        for ours, theirs in zip(logprobs["top_logprobs"], want["top_logprobs"], strict=True):
            assert ours == pytest.approx(theirs, **TOLERANCE)
    assert whole["choices"][0]["text"] == expected["text"]


def test_chat_logprobs_parse_into_openai_types_and_equal_llama_cpp_pythons(
    make_swarm: MakeSwarm, tmp_path: Path
) -> None:
    chat_model = write_tiny_llama(tmp_path / "chat.gguf", chat_template=CHATML_TEMPLATE)
    swarm = make_swarm(workers=1, model=chat_model)
    api = openai.OpenAI(base_url=f"http://{swarm.http}/v1", api_key="unused", max_retries=0, timeout=30)
    messages: list[Any] = [{"role": "user", "content": "Hi"}]
    answer = api.chat.completions.create(
        model="", messages=messages, max_tokens=TOKENS, temperature=0, logprobs=True, top_logprobs=4
    )
    content = answer.choices[0].logprobs.content if answer.choices[0].logprobs else None
    assert content
    expected = reference(chat_model, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", 4)["logprobs"]
    # llama-cpp-python reads the same prompt as text; the chat template's special tokens tokenize alike here.
    assert [c.token for c in content] == expected["tokens"][: len(content)]
    assert [c.logprob for c in content] == pytest.approx(expected["token_logprobs"][: len(content)], **TOLERANCE)
    for c, top in zip(content, expected["top_logprobs"], strict=False):
        assert {t.token: t.logprob for t in c.top_logprobs} == pytest.approx(top, **TOLERANCE)
        assert c.bytes == list(c.token.encode())
    streamed = [
        entry
        for chunk in api.chat.completions.create(
            model="", messages=messages, max_tokens=TOKENS, temperature=0, logprobs=True, top_logprobs=4, stream=True
        )
        if chunk.choices and chunk.choices[0].logprobs
        for entry in chunk.choices[0].logprobs.content or []
    ]
    # The second run reuses the first's cached prompt prefix, so it rounds a little differently.
    assert [c.token for c in streamed] == [c.token for c in content]
    assert [c.logprob for c in streamed] == pytest.approx([c.logprob for c in content], **TOLERANCE)


def test_bad_logprob_fields_get_400s_naming_the_field(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    chat_model = write_tiny_llama(tmp_path / "chat.gguf", chat_template=CHATML_TEMPLATE)
    swarm = make_swarm(workers=1, model=chat_model)
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    cases = [
        ("/v1/chat/completions", {**chat, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("/v1/chat/completions", {**chat, "top_logprobs": 2}, "top_logprobs"),
        ("/v1/chat/completions", {**chat, "logprobs": 3}, "logprobs"),
        ("/v1/completions", {"prompt": "x", "logprobs": 6}, "logprobs"),
        ("/v1/completions", {"prompt": "x", "logprobs": True}, "logprobs"),
        ("/v1/completions", {"prompt": "x", "logprobs": 2, "top_logprobs": 2}, "top_logprobs"),
    ]
    for path, body, field in cases:
        status, answer = post(swarm, path, body)
        assert status == 400, (body, answer)
        assert answer["error"]["message"].startswith(field), (body, answer)


def test_grpc_pieces_carry_logprobs_through_a_two_stage_pipeline(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    whole = write_tiny_llama(tmp_path / "four.gguf", seed=0, n_layer=4)
    files = [tmp_path / "split" / s.file for s in split_model(whole, 2, tmp_path / "split").stages]
    swarm = make_swarm(workers=0, model=whole)
    swarm.processes.start_pipeline(swarm.address, files, "--threads", "1", "--slots", "2", "--context", "512")
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        pieces = [
            e
            for e in client.stream(PROMPT, max_tokens=TOKENS, temperature=0.0, logprobs=True, top_logprobs=2)
            if isinstance(e, TextPiece)
        ]
    assert pieces and all(len(p.logprobs) == len(p.token_ids) for p in pieces)
    expected = reference(whole, PROMPT, 2)["logprobs"]
    ours = [lp for p in pieces for lp in p.logprobs]
    assert [lp.token for lp in ours] == [t for p in pieces for t in p.token_ids]
    assert [lp.text.decode() for lp in ours] == expected["tokens"]
    assert [lp.logprob for lp in ours] == pytest.approx(expected["token_logprobs"], **TOLERANCE)
    assert [len(lp.top) for lp in ours] == [2] * len(ours)


def test_a_stream_whose_worker_is_sigkilled_keeps_a_logprob_for_every_token(
    make_swarm: MakeSwarm, redis_url: str, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)
    workers = {name: swarm.add_worker("--worker-id", name, "--slots", "2", name=name) for name in ("w-a", "w-b")}
    swarm.wait_for_workers(2)
    request_id = "logprobs-failover"
    pieces: list[TextPiece] = []
    killed = ""
    with swarm.client() as client:
        for event in client.stream(
            "Once", max_tokens=160, temperature=0.0, logprobs=True, top_logprobs=3, request_id=request_id
        ):
            if isinstance(event, TextPiece):
                pieces.append(event)
                if not killed and sum(len(p.token_ids) for p in pieces) >= 8:
                    killed = serving_worker(redis_url, request_id)
                    workers[killed].kill()
            else:
                assert killed and event.worker_id != killed, "the kill came after the end: no failover tested"
    assert all(len(p.logprobs) == len(p.token_ids) for p in pieces)
    assert [lp.token for p in pieces for lp in p.logprobs] == [t for p in pieces for t in p.token_ids]
    assert all(len(lp.top) == 3 and lp.top[0].token == lp.token for p in pieces for lp in p.logprobs)  # greedy
