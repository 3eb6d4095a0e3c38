"""The coordinator plans: workers that offer memory and speed get whole replicas or pipeline stages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import llama_cpp

from swarm.client import SwarmClient
from swarm.launch.local_swarm import ManagedProcess, wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
PROMPT = "The quick brown fox"
# The slow model needs 61 MB with the KV cache of 8 slots x 256 tokens (67 MB at 512 tokens), each
# node's own: 40 MiB holds half of it, 500 MiB all of it.
SMALL, BIG = "40M", "500M"


def workers(swarm: RunningSwarm) -> list[ManagedProcess]:
    return [p for p in swarm.processes.processes if p.name != "coordinator"]


def roles(client: SwarmClient) -> dict[str, str]:
    return {w.info.worker_id: w.info.role for w in client.status().workers if w.up}


class PlannedSwarm:
    """A coordinator planning the slow model, and `swarm join --auto` nodes with empty caches."""

    def __init__(self, make_swarm: MakeSwarm, slow_model: Path, tmp_path: Path) -> None:
        plan = ("--plan-model", str(slow_model), "--plan-model-name", "slow", "--stages-dir", str(tmp_path))
        self.swarm = make_swarm(workers=0, model=slow_model, coordinator_args=plan)
        self._env = {"XDG_CACHE_HOME": str(tmp_path / "worker-cache")}  # nothing on disk: every file is downloaded

    def offer(self, name: str, memory: str, context: int = 256) -> None:
        flags = ("--worker-id", name, "--memory", memory, "--speed", "1e9", "--threads", "1", "--context", str(context))
        self.swarm.processes.start_auto_worker(self.swarm.address, *flags, name=name, env=self._env)


def test_small_nodes_form_a_pipeline_a_big_one_a_replica_and_a_lost_stage_is_replanned(
    make_swarm: MakeSwarm, slow_model: Path, tmp_path: Path
) -> None:
    planned = PlannedSwarm(make_swarm, slow_model, tmp_path)
    swarm, offer = planned.swarm, planned.offer
    offer("small-a", SMALL)
    offer("small-b", SMALL)
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        assert sorted(roles(client).values()) == ["stage 1/2 L0-2", "stage 2/2 L3-5"]
        piped = client.generate(PROMPT, max_tokens=24, temperature=0.0)
    llm = llama_cpp.Llama(str(slow_model), n_ctx=256, n_threads=1, verbose=False)
    assert piped.text == llm.create_completion(PROMPT, max_tokens=24, temperature=0.0)["choices"][0]["text"]
    llm.close()

    # A new coordinator takes the plan over from Redis: the pipeline keeps serving, nobody is moved.
    plan_args = swarm.coordinator.argv[swarm.coordinator.argv.index("--plan-model") :]
    swarm.coordinator.kill()
    swarm.start_coordinator(*plan_args)
    swarm.wait_for_coordinator()
    with swarm.client() as client:
        wait_until(lambda: len(roles(client)) == 2, 10, "both stages up with the new coordinator")
        assert client.generate(PROMPT, max_tokens=24, temperature=0.0).text == piped.text
    log = swarm.coordinator.log_path.read_text() if swarm.coordinator.log_path else ""
    assert "took over the plan for slow with 2 nodes" in log
    assert not any("take a new assignment" in p.log_path.read_text() for p in workers(swarm) if p.log_path)

    offer("big", BIG)
    with swarm.client() as client:
        # The stages' heartbeats may still be finding the new coordinator: a stage shows down until one lands.
        def replica_beside_the_pipeline() -> bool:
            return sorted(roles(client).values()) == ["stage 1/2 L0-2", "stage 2/2 L3-5", "whole"]

        wait_until(replica_beside_the_pipeline, 60, "the big node to serve the whole model beside the pipeline")
        stages = {w: r for w, r in roles(client).items() if r.startswith("stage")}
        last = next(w for w, r in stages.items() if r.startswith("stage 2/2"))
        first = next(w for w, r in stages.items() if r.startswith("stage 1/2"))
        next(p for p in swarm.processes.processes if p.name == last).kill()
        # The pipeline lost a stage: its first stage is moved off it and waits as a spare; the replica serves.
        wait_until(lambda: first not in roles(client), 30, f"{first} to leave its broken pipeline")
        served = client.generate(PROMPT, max_tokens=24, temperature=0.0)
        assert served.finished.worker_id == "big"
        assert served.text == piped.text


def test_a_stage_lost_mid_stream_is_replanned_onto_the_nodes_left_and_the_stream_continues(
    make_swarm: MakeSwarm, slow_model: Path, tmp_path: Path
) -> None:
    planned = PlannedSwarm(make_swarm, slow_model, tmp_path)
    swarm = planned.swarm
    for name in ("n1", "n2", "n3"):  # three small nodes: a pipeline and a replica of its bottleneck stage
        planned.offer(name, SMALL, context=512)
    swarm.wait_for_workers(3)
    with swarm.client() as client:
        reference = client.generate(PROMPT, max_tokens=300, temperature=0.0)
        layout = roles(client)
        last = [w for w, r in layout.items() if r.startswith("stage 2/2")]
        assert len(layout) == 3 and last, layout
        text = ""
        for event in client.stream(PROMPT, max_tokens=300, temperature=0.0):
            if isinstance(event, TextPiece):
                text += event.text
                if len(text) > 40 and last:
                    for node in last:  # every last stage dies: the plan must be redone with what is left
                        next(p for p in workers(swarm) if p.name == node).kill()
                    last = []
            elif isinstance(event, Finished):
                finished = event
        assert text == reference.text
        assert finished.completion_tokens == 300

        # Both stages of the new plan serve; one may be moving still (a measured re-cut) as the stream ends.
        def replanned() -> bool:
            return sorted(r.split(" L")[0] for r in roles(client).values()) == ["stage 1/2", "stage 2/2"]

        wait_until(replanned, 30, "a two-stage pipeline on the nodes left")
