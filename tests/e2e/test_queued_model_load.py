"""A request for a planned model no node serves is queued in Redis at once, like any other, and waits there
while a node loads the model: it shows in the queue (and `swarm status`) meanwhile and completes with the
model's own text (a chat too, rendered with the model file's template); when the coordinator holding it is
SIGKILLed while the model loads, another coordinator on the same Redis takes it over, keeps the model
wanted, and runs it for the client's retry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import redis

from swarm.client import Completion, SwarmCallError, SwarmClient
from swarm.coordinator import redis_keys as keys
from swarm.coordinator.openai_http.chat_template import ChatMessage, render_chat
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import free_port, wait_until
from tests.conftest import RunningSwarm, coordinator_answers
from tests.e2e.test_model_fleet import PROMPT, check_greedy, serving, states
from tests.e2e.test_openai_api import CHATML_TEMPLATE

MakeSwarm = Callable[..., RunningSwarm]
LOAD_WAIT_S = 90
RESIDENCY_S = 10
pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def planned_swarm(
    make_swarm: MakeSwarm, tmp_path: Path, *, second_coordinator: bool = False, b_template: str = ""
) -> tuple[RunningSwarm, dict[str, Path], str]:
    """A coordinator planning models a and b with two `--auto` nodes heartbeating through it, both given a;
    second_coordinator: another one on the same Redis and plan, started first, its address returned;
    b_template: b's chat template.

    A node serves a model at least RESIDENCY_S before it is moved: b's load starts that long after the
    nodes joined, not in the second or so a tiny model takes, so the tests look at the request while it waits.
    """
    models = {
        "a": write_tiny_llama(tmp_path / "a.gguf", seed=0),
        "b": write_tiny_llama(tmp_path / "b.gguf", seed=1, chat_template=b_template),
    }
    plan = (
        *("--plan-model", str(models["a"]), "--stages-dir", str(tmp_path / "library")),
        *("--add-model", f"b={models['b']}", "--model-residency", str(RESIDENCY_S)),
        *("--model-load-wait", str(LOAD_WAIT_S)),
    )
    swarm = make_swarm(workers=0, model=models["a"], coordinator_args=plan)
    other = ""
    if second_coordinator:
        other = f"127.0.0.1:{free_port()}"  # no node heartbeats through it
        swarm.processes.start_coordinator(other, f"127.0.0.1:{free_port()}", *plan, name="coordinator-b")
        wait_until(lambda: coordinator_answers(other), 30, "the second coordinator")
    env = {"XDG_CACHE_HOME": str(tmp_path / "worker-cache")}
    for name in ("node-1", "node-2"):
        flags = ("--worker-id", name, "--memory", "500M", "--threads", "1", "--context", "256", "--slots", "2")
        swarm.processes.start_auto_worker(swarm.address, *flags, name=name, env=env)
    swarm.wait_for_workers(2)
    return swarm, models, other


def ask_for_b(address: str, request_id: str) -> Completion:
    with SwarmClient(address, retries=0) as client:
        return client.generate(PROMPT, model="b", max_tokens=12, temperature=0.0, request_id=request_id)


def test_requests_for_an_unloaded_planned_model_wait_in_the_redis_queue_and_complete(
    make_swarm: MakeSwarm, tmp_path: Path, redis_client: redis.Redis
) -> None:
    """A gRPC generate and an OpenAI chat (rendered with the planned file's template) for b, which no node serves."""
    swarm, models, _ = planned_swarm(make_swarm, tmp_path, b_template=CHATML_TEMPLATE)
    api = openai.OpenAI(base_url=f"http://{swarm.http}/v1", api_key="unused", max_retries=0, timeout=LOAD_WAIT_S)
    messages = [{"role": "user", "content": "Say something"}]
    with swarm.client() as client, ThreadPoolExecutor(2) as pool:
        assert sorted(serving(client).values()) == ["a", "a"]
        started = time.monotonic()
        answer: Future[Completion] = pool.submit(ask_for_b, swarm.address, "load-b")
        chat = pool.submit(
            api.chat.completions.create, model="b", messages=messages, max_completion_tokens=12, temperature=0
        )
        wait_until(lambda: redis_client.zcard(keys.QUEUE) == 2, 10, "both requests in the queue")
        assert redis_client.zscore(keys.QUEUE, "load-b") is not None
        queued_after = time.monotonic() - started
        depth = client.status().queue_depth
        assert not answer.done() and not chat.done(), "b answered before it was loaded"
        assert sorted(serving(client).values()) == ["a", "a"], "b was served before the requests were queued"
        wait_until(lambda: states(client)["b"] == "loading", 5, "b listed as loading")

        completion = answer.result(timeout=LOAD_WAIT_S)
        chat_answer = chat.result(timeout=LOAD_WAIT_S)
        print(f"queued after {queued_after:.2f} s; answered {time.monotonic() - started:.1f} s after it was asked")
        assert depth >= 2, "swarm status did not count the requests waiting for their model"
        check_greedy(models["b"], completion)
        assert redis_client.zscore(keys.QUEUE, "load-b") is None
        assert sorted(serving(client).values()) == ["a", "b"]
        # b serves now: the chat's prompt, rendered as the worker's template would be, gives the same text.
        rendered = render_chat(CHATML_TEMPLATE, [ChatMessage("user", "Say something")])
        expected = client.generate(rendered, model="b", max_tokens=12, temperature=0.0)
        assert chat_answer.choices[0].message.content == expected.text
        assert chat_answer.usage is not None and chat_answer.usage.prompt_tokens == expected.finished.prompt_tokens


def test_a_request_waiting_for_its_model_outlives_the_sigkill_of_its_coordinator(
    make_swarm: MakeSwarm, tmp_path: Path, redis_client: redis.Redis
) -> None:
    swarm, models, b_address = planned_swarm(make_swarm, tmp_path, second_coordinator=True)
    b_process = next(p for p in swarm.processes.processes if p.name == "coordinator-b")
    request_key = keys.request_key("kill-b")
    with ThreadPoolExecutor(1) as pool:
        first_try: Future[Completion] = pool.submit(ask_for_b, b_address, "kill-b")
        wait_until(lambda: redis_client.zscore(keys.QUEUE, "kill-b") is not None, 10, "the request in the queue")
        owner_b = str(redis_client.hget(request_key, "coordinator"))
        b_process.kill()
        with pytest.raises(SwarmCallError):
            first_try.result(timeout=30)  # the client's call to B broke off
    # Killed while b loads: its request was still queued, owned by B, not yet running anywhere.
    assert redis_client.hget(request_key, "state") == "queued"

    def taken_over() -> bool:
        return redis_client.hget(request_key, "coordinator") not in (owner_b, None, "")

    wait_until(taken_over, 15, "coordinator A taking the request over")
    assert "requeueing kill-b after 0 pieces" in swarm.coordinator.log_tail(10**6)
    with swarm.client() as client:  # the client's retry, with the same request id, through A
        completion = client.generate(PROMPT, model="b", max_tokens=12, temperature=0.0, request_id="kill-b")
        check_greedy(models["b"], completion)
        assert completion.finished.completion_tokens == 12
        assert sorted(serving(client).values()) == ["a", "b"]
        assert states(client) == {"a": "loaded", "b": "loaded"}
