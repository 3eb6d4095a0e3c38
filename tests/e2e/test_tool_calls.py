"""Tool calls through a real swarm and the official `openai` package: required and named calls that always
match their functions' schemas, streamed and whole; a chat that goes on with the tools' results; the model
free to answer in text under "auto"; clear 400s for a model whose template calls no tools; and `instructor`,
a common client built on them, unchanged."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import instructor
import jsonschema
import openai
import pydantic
import pytest

from swarm.gguf_files.synthetic_model import write_tiny_llama
from tests.conftest import RunningSwarm
from tests.json_schemas import random_schema

MakeSwarm = Callable[..., RunningSwarm]
pytestmark = pytest.mark.timeout(90)

# Qwen 2.5's way of offering tools (ChatML turns, the functions as JSON in the system turn, calls in
# <tool_call> tags, their results as <tool_response> in a user turn), cut to its bones.
HERMES_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nYou may call functions. Their signatures:\n<tools>"
    "{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}\n</tools>\n"
    'Call one as <tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n"
    "</tool_response><|im_end|>\n"
    "{%- elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n{{ message.content }}"
    "{%- for call in message.tool_calls %}\n<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}\n</tool_call>'
    "{%- endfor %}<|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def function(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": f"Does {name}", "parameters": parameters}}


@pytest.fixture
def api(make_swarm: MakeSwarm, tmp_path: Path) -> openai.OpenAI:
    model = write_tiny_llama(tmp_path / "hermes.gguf", chat_template=HERMES_TEMPLATE, context_length=2048)
    swarm = make_swarm(workers=1, model=model, worker_args=("--slots", "4", "--context", "2048"))
    return openai.OpenAI(base_url=f"http://{swarm.http}/v1", api_key="unused", max_retries=0, timeout=60)


def test_required_calls_always_match_their_schemas_whole_and_streamed(api: openai.OpenAI) -> None:
    rng = random.Random(11)
    for i in range(8):
        tools = [function(f"tool_{j}", random_schema(rng)) for j in range(2)]
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
        # Parallel calls let the model go on calling, which a random model may do until max_tokens: the
        # calls it finished still count, and must conform.
        parallel = i % 4 == 3
        fields: dict[str, Any] = {"temperature": 1.0 * (i % 2), "seed": i, "max_tokens": 700}
        fields |= {"tools": tools, "tool_choice": "required", "parallel_tool_calls": parallel}
        messages: Any = [{"role": "user", "content": f"Do task {i}"}]
        if i % 2 == 0:
            choice = api.chat.completions.create(model="", messages=messages, **fields).choices[0]
            reason = choice.finish_reason
            calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
        else:
            chunks = list(api.chat.completions.create(model="", messages=messages, stream=True, **fields))
            reason = chunks[-1].choices[0].finish_reason
            deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
            assert [d.index for d in deltas] == list(range(len(deltas)))
            calls = [(d.id, d.function.name, d.function.arguments) for d in deltas if d.function]
        assert reason == "tool_calls" or (parallel and reason == "length"), reason
        assert calls, "a required call was not made"
        assert parallel or len(calls) == 1
        for call_id, name, arguments in calls:
            assert call_id and call_id.startswith("call_")
            assert name in schemas
            jsonschema.validate(json.loads(arguments or ""), schemas[name])


def test_a_named_call_a_single_call_and_the_chat_going_on_with_its_result(api: openai.OpenAI) -> None:
    weather = function("get_weather", {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}})
    clock = function("get_time", {"type": "object", "properties": {}})
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    chat = api.chat.completions.create(
        model="",
        messages=messages,
        tools=[weather, clock],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        max_tokens=200,
        temperature=0.0,
    )
    calls = chat.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]  # named, and one only
    messages += [chat.choices[0].message.model_dump(exclude_none=True)]
    messages += [{"role": "tool", "tool_call_id": calls[0].id, "content": '{"celsius": 12}'}]
    after = api.chat.completions.create(model="", messages=messages, tools=[weather, clock], max_tokens=8)
    assert after.choices[0].finish_reason in ("length", "stop", "tool_calls")


def test_under_auto_the_model_may_answer_in_text(api: openai.OpenAI) -> None:
    tools = [function("get_time", {"type": "object", "properties": {}})]
    chat = api.chat.completions.create(
        model="", messages=[{"role": "user", "content": "Hello"}], tools=tools, max_tokens=24, temperature=0.0
    )
    choice = chat.choices[0]
    # The random model writes no call marker by itself: its words come as content, as they would without tools.
    assert choice.finish_reason == "length" and choice.message.tool_calls is None
    plain = api.chat.completions.create(
        model="", messages=[{"role": "user", "content": "Hello"}], max_tokens=24, temperature=0.0
    )
    # Only the prompt differs (the template shows the tools), so only the length of the answer is compared.
    assert choice.message.content and plain.choices[0].message.content


def test_a_model_whose_template_calls_no_tools_is_refused_clearly(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "chatml.gguf", chat_template=CHATML_TEMPLATE)
    swarm = make_swarm(workers=1, model=model)
    api = openai.OpenAI(base_url=f"http://{swarm.http}/v1", api_key="unused", max_retries=0, timeout=30)
    tools: Any = [function("get_time", {"type": "object", "properties": {}})]
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}], tools=tools)
    assert refused.value.body is not None and "cannot call tools" in str(refused.value.body)
    assert isinstance(refused.value.body, dict) and refused.value.body.get("param") == "tools"
    # tool_choice "none" needs no tool calls of the model: it answers as without tools.
    chat = api.chat.completions.create(
        model="", messages=[{"role": "user", "content": "hi"}], tools=tools, tool_choice="none", max_tokens=4
    )
    assert chat.choices[0].message.content


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=8)
    age: int
    # Bounded strings: a random model's string would go on until max_tokens.
    tags: list[Annotated[str, pydantic.Field(max_length=4)]] = pydantic.Field(max_length=2)


@pytest.mark.parametrize("mode", [instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA])
def test_instructor_gets_its_pydantic_model_back_unchanged(api: openai.OpenAI, mode: instructor.Mode) -> None:
    # instructor asks for a named tool call (TOOLS) or a json_schema response_format: both are held to the schema.
    client = instructor.from_openai(api, mode=mode)
    person = client.chat.completions.create(
        model="",
        response_model=Person,
        messages=[{"role": "user", "content": "Alice is 30."}],
        max_tokens=300,
        temperature=0.0,
        max_retries=0,
    )
    assert isinstance(person, Person)
