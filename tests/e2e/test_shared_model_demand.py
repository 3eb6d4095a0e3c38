"""Several models with two coordinators on one Redis: a request for a model no node serves, sent to the
coordinator no node heartbeats through, is loaded by the other's fleet and completes well within the load
wait (the demand is shared through Redis), and both coordinators list the model."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm.client import SwarmClient
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import free_port, wait_until
from tests.conftest import RunningSwarm, coordinator_answers
from tests.e2e.test_model_fleet import PROMPT, check_greedy, serving, states

MakeSwarm = Callable[..., RunningSwarm]
LOAD_WAIT_S = 60
pytestmark = pytest.mark.timeout(150)


def test_a_model_asked_for_on_the_coordinator_no_node_heartbeats_through_is_loaded_by_the_other(
    make_swarm: MakeSwarm, tmp_path: Path
) -> None:
    models = {name: write_tiny_llama(tmp_path / f"{name}.gguf", seed=seed) for seed, name in enumerate("ab")}
    plan = (
        *("--plan-model", str(models["a"]), "--stages-dir", str(tmp_path / "library")),
        *("--add-model", f"b={models['b']}", "--model-residency", "0", "--model-load-wait", str(LOAD_WAIT_S)),
    )
    swarm = make_swarm(workers=0, model=models["a"], coordinator_args=plan)
    b_address = f"127.0.0.1:{free_port()}"
    swarm.processes.start_coordinator(b_address, f"127.0.0.1:{free_port()}", *plan, name="coordinator-b")
    env = {"XDG_CACHE_HOME": str(tmp_path / "worker-cache")}
    for name in ("node-1", "node-2"):  # both heartbeat through coordinator A only
        flags = ("--worker-id", name, "--memory", "500M", "--threads", "1", "--context", "256", "--slots", "2")
        swarm.processes.start_auto_worker(swarm.address, *flags, name=name, env=env)
    swarm.wait_for_workers(2)
    wait_until(lambda: coordinator_answers(b_address), 30, "coordinator B")
    # No retries: without the shared demand B's request fails once the load wait is over, not on a retry.
    with SwarmClient(b_address, retries=0) as b_client, swarm.client() as a_client:
        assert sorted(serving(b_client).values()) == ["a", "a"]
        assert states(b_client) == {"a": "loaded", "b": "available"}

        started = time.monotonic()
        answer = b_client.generate(PROMPT, model="b", max_tokens=12, temperature=0.0)
        waited = time.monotonic() - started
        print(f"b answered through coordinator B {waited:.1f} s after it was asked for")
        check_greedy(models["b"], answer)
        assert waited < LOAD_WAIT_S / 2, f"b took {waited:.1f} s to answer"
        assert sorted(serving(a_client).values()) == ["a", "b"]
        assert states(a_client) == states(b_client) == {"a": "loaded", "b": "loaded"}
