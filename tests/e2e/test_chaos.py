"""Chaos: a steady load while workers are killed and restarted every few seconds loses, repeats and fails nothing."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from swarm.cli.local_swarm import wait_until
from swarm.client import SwarmCallError
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
REQUESTS = 200
CONCURRENCY = 16
MAX_TOKENS = 128
KILL_EVERY_S = 1.0


def test_requests_survive_workers_killed_and_restarted_under_load(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    workers = [swarm.add_worker("--worker-id", f"chaos-{i}", name=f"chaos-{i}") for i in range(3)]
    swarm.wait_for_workers(3)
    prompts = [f"Story number {i} begins with" for i in range(20)]
    with swarm.client() as client:
        expected = {p: client.generate(p, max_tokens=MAX_TOKENS, temperature=0.0).text for p in prompts}

    done = threading.Event()
    kills = 0

    def chaos() -> None:  # one worker at a time: the others keep serving while it restarts
        nonlocal kills
        rng = random.Random(3)
        while not done.wait(KILL_EVERY_S):
            victim = rng.choice(workers)
            victim.kill()
            kills += 1
            victim.start()

    def run(i: int) -> tuple[str, str | None, int]:
        """(text, error, finishes) of request i."""
        prompt, text, finishes = prompts[i % len(prompts)], "", 0
        try:
            with swarm.client() as client:
                for event in client.stream(prompt, max_tokens=MAX_TOKENS, temperature=0.0, request_id=f"chaos-{i}"):
                    if isinstance(event, TextPiece):
                        text += event.text
                    elif isinstance(event, Finished):
                        finishes += 1
        except SwarmCallError as exc:
            return text, str(exc), finishes
        return text, None, finishes

    killer = threading.Thread(target=chaos, name="chaos")
    killer.start()
    try:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(run, range(REQUESTS)))
    finally:
        done.set()
        killer.join()
    failed = [error for _, error, _ in results if error is not None]
    lost = sum(1 for _, error, finishes in results if error is None and finishes != 1)
    duplicated = sum(
        1 for i, (text, error, _) in enumerate(results) if error is None and text != expected[prompts[i % len(prompts)]]
    )
    print(f"requests={REQUESTS} kills={kills} lost={lost} duplicated={duplicated} failed={len(failed)}")
    assert kills >= 2, "the load ended before the chaos began: nothing was tested"
    assert (lost, duplicated, len(failed)) == (0, 0, 0), failed[:3]
    log = swarm.coordinator.log_path.read_text() if swarm.coordinator.log_path else ""
    assert "resuming it elsewhere" in log, "no kill hit a running request: failover was not exercised"
    wait_until(lambda: len(swarm.up_workers()) == 3, 30, "every worker back up")
