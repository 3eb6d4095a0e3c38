"""Several models on one swarm of `--auto` nodes: a request for a model no node serves moves a node to it,
taken from a model with nodes to spare, then from the least recently used model; the request waits and
completes, and `swarm models` shows what is loaded, and where."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from swarm.client import Completion, SwarmCallError, SwarmClient
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import wait_until
from tests.conftest import RunningSwarm
from tests.greedy_check import GreedyReference

MakeSwarm = Callable[..., RunningSwarm]
PROMPT = "The quick brown fox"
pytestmark = pytest.mark.timeout(150)


def serving(client: SwarmClient) -> dict[str, str]:
    """worker id -> the model it serves, for workers taking requests."""
    return {w.info.worker_id: w.info.model for w in client.status().workers if w.up and w.info.takes_requests}


def states(client: SwarmClient) -> dict[str, str]:
    return {m.name: m.state for m in client.list_models()}


def check_greedy(model: Path, answer: Completion) -> None:
    """The answer is the model's own greedy text (up to float rounding's near ties): it ran on that model."""
    reference = GreedyReference(model)
    try:
        reference.check(PROMPT, answer.token_ids)
    finally:
        reference.close()


def test_a_third_model_evicts_the_least_recently_used_and_its_request_completes(
    make_swarm: MakeSwarm, tmp_path: Path
) -> None:
    models = {name: write_tiny_llama(tmp_path / f"{name}.gguf", seed=seed) for seed, name in enumerate("abc")}
    plan = (
        *("--plan-model", str(models["a"]), "--stages-dir", str(tmp_path / "library")),
        *("--add-model", f"b={models['b']}", "--add-model", f"c={models['c']}"),
        *("--model-residency", "0", "--model-load-wait", "90"),
    )
    swarm = make_swarm(workers=0, model=models["a"], coordinator_args=plan)
    env = {"XDG_CACHE_HOME": str(tmp_path / "worker-cache")}
    for name in ("node-1", "node-2"):
        flags = ("--worker-id", name, "--memory", "500M", "--threads", "1", "--context", "256", "--slots", "2")
        swarm.processes.start_auto_worker(swarm.address, *flags, name=name, env=env)
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        assert sorted(serving(client).values()) == ["a", "a"]  # the primary takes every node until asked otherwise
        assert states(client) == {"a": "loaded", "b": "available", "c": "available"}
        check_greedy(models["a"], client.generate(PROMPT, model="a", max_tokens=12, temperature=0.0))

        # b: one of a's two nodes moves to it; the request waits for it and completes.
        b_answer = client.generate(PROMPT, model="b", max_tokens=12, temperature=0.0)
        check_greedy(models["b"], b_answer)
        wait_until(lambda: sorted(serving(client).values()) == ["a", "b"], 30, "a and b served at once")
        assert (
            client.generate(PROMPT, model="b", max_tokens=4, temperature=0.0).finished.worker_id
            == b_answer.finished.worker_id
        )

        # c: no model has a node to spare; a was used least recently, so its node goes.
        c_answer = client.generate(PROMPT, model="c", max_tokens=12, temperature=0.0)
        check_greedy(models["c"], c_answer)
        wait_until(lambda: sorted(serving(client).values()) == ["b", "c"], 30, "b and c served, a evicted")
        assert states(client) == {"a": "available", "b": "loaded", "c": "loaded"}
        shown = {m.name: m.workers for m in client.list_models()}
        assert shown["c"] == (c_answer.finished.worker_id,)


def test_a_model_no_node_can_hold_is_refused_clearly_and_the_others_keep_serving(
    make_swarm: MakeSwarm, tiny_model: Path, slow_model: Path, tmp_path: Path
) -> None:
    plan = (
        *("--plan-model", str(tiny_model), "--plan-model-name", "tiny", "--stages-dir", str(tmp_path / "library")),
        *("--add-model", f"slow={slow_model}", "--model-residency", "0"),
    )
    swarm = make_swarm(workers=0, model=tiny_model, coordinator_args=plan)
    # 40 MiB holds the tiny model, not the slow one (61 MB with its KV cache).
    flags = ("--worker-id", "small", "--memory", "40M", "--threads", "1", "--context", "256", "--slots", "8")
    swarm.processes.start_auto_worker(swarm.address, *flags, name="small", env={"XDG_CACHE_HOME": str(tmp_path)})
    swarm.wait_for_workers(1)
    with swarm.client() as client:
        with pytest.raises(SwarmCallError) as refused:
            client.generate(PROMPT, model="slow", max_tokens=4)
        assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert "fits no PC of this swarm whole" in str(refused.value)
        assert client.generate(PROMPT, model="tiny", max_tokens=4).finished.worker_id == "small"
