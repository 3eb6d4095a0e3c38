"""Mid-stream failover: workers and pipeline stages die at random moments; every stream completes unchanged."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from swarm.client import SwarmClient
from swarm.gguf_files.stage_files import split_model
from swarm.launch.local_swarm import ManagedProcess, wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm, serving_worker

MakeSwarm = Callable[..., RunningSwarm]
PROMPT = "Once upon a time"
MAX_TOKENS = 160  # long enough that a kill in its first half lands mid-stream, short enough for 6 rounds
ROUNDS = 6


def worker_up(client: SwarmClient, worker_id: str) -> bool:
    return any(w.up for w in client.status().workers if w.info.worker_id == worker_id)


def stream_killing(
    client: SwarmClient, request_id: str, kill_after: int, kill: Callable[[], str]
) -> tuple[str, Finished, str]:
    """Streams PROMPT greedily and calls kill once kill_after tokens arrived; returns text, finish, what died."""
    text, tokens, killed = "", 0, ""
    finished = None
    for event in client.stream(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0, request_id=request_id):
        if isinstance(event, TextPiece):
            text += event.text
            tokens += len(event.token_ids)
            if not killed and tokens >= kill_after:
                killed = kill()
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None, "the stream ended without a finish"
    return text, finished, killed


def test_a_killed_worker_s_streams_continue_on_another_worker_unchanged(
    make_swarm: MakeSwarm, redis_url: str, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)
    workers = {
        name: swarm.add_worker("--worker-id", name, "--slots", "2", "--context", "1024", name=name)
        for name in ("w-a", "w-b")
    }
    swarm.wait_for_workers(2)
    rng = random.Random(7)
    with swarm.client() as client:
        reference = client.generate(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0)
        assert reference.finished.completion_tokens == MAX_TOKENS
        for round_ in range(ROUNDS):
            request_id = f"failover-{round_}"

            def kill(request_id: str = request_id) -> str:
                victim = serving_worker(redis_url, request_id)
                workers[victim].kill()
                return victim

            text, finished, killed = stream_killing(client, request_id, rng.randrange(1, MAX_TOKENS // 2), kill)
            assert text == reference.text, f"round {round_}: text differs after {killed} died"
            assert finished.completion_tokens == MAX_TOKENS
            assert finished.prompt_tokens == reference.finished.prompt_tokens
            assert finished.worker_id != killed, f"round {round_}: the kill came after the end; no failover tested"
            workers[killed].start()
            wait_until(lambda killed=killed: worker_up(client, killed), 30, f"{killed} back up")


def kill_and_restart(process: ManagedProcess) -> Callable[[], str]:
    def kill() -> str:
        process.kill()
        process.start()  # the same port: the stage before it reconnects when it is back
        return process.name

    return kill


def test_a_killed_middle_stage_is_restarted_and_its_streams_continue_unchanged(
    make_swarm: MakeSwarm, slow_model: Path, tmp_path: Path
) -> None:
    stage_files = [tmp_path / "split" / s.file for s in split_model(slow_model, 3, tmp_path / "split").stages]
    swarm = make_swarm(workers=0, model=slow_model)
    started = swarm.processes.start_pipeline(swarm.address, stage_files, "--threads", "1", "--context", "1024")
    middle = next(p for p in started if p.name == "stage-1")
    swarm.wait_for_workers(3)
    rng = random.Random(11)
    with swarm.client() as client:
        reference = client.generate(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0)
        for round_ in range(ROUNDS):
            kill_after = rng.randrange(1, MAX_TOKENS // 2)
            text, finished, _ = stream_killing(client, f"stage-failover-{round_}", kill_after, kill_and_restart(middle))
            assert text == reference.text, f"round {round_}: text differs after the middle stage died"
            assert finished.completion_tokens == MAX_TOKENS
    log = swarm.coordinator.log_path.read_text() if swarm.coordinator.log_path else ""
    assert log.count("resuming it elsewhere") >= ROUNDS, "some kills came after the end: no failover tested"
