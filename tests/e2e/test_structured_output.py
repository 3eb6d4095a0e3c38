"""Structured output through real swarms: schema-conforming answers from a whole worker (OpenAI API), a
2-stage pipeline (gRPC grammar) and a batch job, clear refusals of what cannot be enforced, and a SIGKILLed
worker's constrained stream continuing elsewhere, still conforming."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest

from swarm.client import BatchClient, SwarmCallError
from swarm.client.batch_file import parse_batch_file
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import wait_until
from swarm.shared.batch_types import BatchState
from swarm.shared.json_schema_grammar import schema_grammar
from swarm.shared.types import Finished, FinishReason, TextPiece
from tests.conftest import RunningSwarm, serving_worker
from tests.json_schemas import check_answer, random_schema

MakeSwarm = Callable[..., RunningSwarm]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

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


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def test_openai_answers_conform_to_random_schemas_through_a_whole_worker(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    chat_model = write_tiny_llama(tmp_path / "chat.gguf", chat_template=CHATML_TEMPLATE)
    swarm = make_swarm(workers=1, model=chat_model, worker_args=("--slots", "4", "--context", "1024"))
    api = openai.OpenAI(base_url=f"http://{swarm.http}/v1", api_key="unused", max_retries=0, timeout=30)
    rng = random.Random(3)
    schemas = [random_schema(rng) for _ in range(8)]

    def ask(i: int) -> str:
        schema, sampling = schemas[i], {"temperature": 1.0 * (i % 2), "seed": i, "max_tokens": 400}
        if i % 4 < 2:
            messages = [{"role": "user", "content": f"Answer {i}"}]
            chat = api.chat.completions.create(
                model="", messages=messages, response_format=response_format(schema), **sampling
            )
            assert chat.choices[0].finish_reason == "stop"
            return chat.choices[0].message.content or ""
        chunks = api.completions.create(
            model="",
            prompt=f"Answer {i}:",
            stream=True,
            extra_body={"response_format": response_format(schema)},
            **sampling,
        )
        return "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(len(schemas))))
    for schema, answer in zip(schemas, answers, strict=True):
        check_answer(answer, schema)
    completion = api.completions.create(
        model="", prompt="Any object:", max_tokens=50, extra_body={"response_format": {"type": "json_object"}}
    )
    assert completion.choices[0].text.startswith("{")  # a random model's strings need not end within 50 tokens


def test_what_cannot_be_enforced_is_refused_with_400_or_invalid_argument_naming_the_field(
    make_swarm: MakeSwarm,
) -> None:
    swarm = make_swarm(workers=1)
    status, body = post(swarm, "/v1/completions", {"prompt": "x", "grammar": "root ::= missing"})
    assert status == 400 and body["error"]["param"] == "grammar", body
    unsupported = response_format({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}})
    status, body = post(swarm, "/v1/completions", {"prompt": "x", "response_format": unsupported})
    assert status == 400, body
    assert body["error"]["param"] == "response_format.json_schema.schema.properties.n"
    assert "'minimum'" in body["error"]["message"]
    with swarm.client() as client:
        with pytest.raises(SwarmCallError) as refused:
            client.generate("x", grammar='root ::= "a" (', max_tokens=4)
        assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT and "grammar" in refused.value.details
        answer = client.generate("x", grammar='root ::= "yes" | "no"', max_tokens=20, temperature=1.0)
    assert answer.text in ("yes", "no") and answer.finished.reason.value == "stop"


def test_grpc_grammars_hold_through_a_two_stage_pipeline_whose_last_stage_samples(
    make_swarm: MakeSwarm, tmp_path: Path
) -> None:
    whole = write_tiny_llama(tmp_path / "four.gguf", seed=0, n_layer=4)
    files = [tmp_path / "split" / s.file for s in split_model(whole, 2, tmp_path / "split").stages]
    swarm = make_swarm(workers=0, model=whole)
    swarm.processes.start_pipeline(swarm.address, files, "--threads", "1", "--slots", "4", "--context", "1024")
    swarm.wait_for_workers(2)
    rng = random.Random(11)
    schemas = [random_schema(rng) for _ in range(8)]
    with swarm.client() as client, ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda i: client.generate(
                    f"Answer {i}:",
                    grammar=schema_grammar(schemas[i], "schema"),
                    max_tokens=400,
                    temperature=1.0 * (i % 2),
                    seed=i,
                ),
                range(len(schemas)),
            )
        )
    for schema, answer in zip(schemas, answers, strict=True):
        assert answer.finished.reason.value == "stop"
        check_answer(answer.text, schema)


def test_a_constrained_stream_whose_worker_is_sigkilled_continues_elsewhere_and_still_conforms(
    make_swarm: MakeSwarm, redis_url: str, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)
    workers = {
        name: swarm.add_worker("--worker-id", name, "--slots", "2", "--context", "1024", name=name)
        for name in ("w-a", "w-b")
    }
    swarm.wait_for_workers(2)
    words = {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 16, "maxItems": 16}
    schema = {"type": "object", "properties": {"words": words, "done": {"type": "boolean"}}, "required": ["words"]}
    grammar = schema_grammar(schema, "schema")
    with swarm.client() as client:
        for round_, temperature in enumerate((0.0, 1.0)):
            request_id = f"constrained-failover-{round_}"
            text, tokens, killed = "", 0, ""
            finished = None
            for event in client.stream(
                "Words:", max_tokens=800, temperature=temperature, seed=round_, request_id=request_id, grammar=grammar
            ):
                if isinstance(event, TextPiece):
                    text += event.text
                    tokens += len(event.token_ids)
                    if not killed and tokens >= 8:
                        killed = serving_worker(redis_url, request_id)
                        workers[killed].kill()
                elif isinstance(event, Finished):
                    finished = event
            assert finished is not None and finished.reason.value == "stop"
            assert killed and finished.worker_id != killed, "the kill came after the end: no failover tested"
            check_answer(text, schema)
            workers[killed].start()
            swarm.wait_for_workers(2)


def test_batch_lines_with_a_response_format_come_back_conforming(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    swarm = make_swarm(workers=1, worker_args=("--slots", "4", "--context", "1024"))
    rng = random.Random(21)
    schemas = [random_schema(rng) for _ in range(6)]
    rows = [
        json.dumps(
            {
                "prompt": f"Record {i}:",
                "max_tokens": 400,
                "temperature": 1.0,
                "seed": i,
                "id": f"r{i}",
                "response_format": response_format(schema),
            }
        )
        for i, schema in enumerate(schemas)
    ]
    lines = parse_batch_file("\n".join(rows))
    with BatchClient(swarm.address) as batches:
        job = batches.submit(lines)
        wait_until(lambda: batches.get(job.job_id).state is BatchState.DONE, 60, "the batch job to finish")
        results = list(batches.results(job.job_id))
    assert [r.custom_id for r in results] == [f"r{i}" for i in range(len(schemas))]
    for schema, result in zip(schemas, results, strict=True):
        assert not result.error and result.finish_reason is FinishReason.STOP, result
        check_answer(result.text, schema)
