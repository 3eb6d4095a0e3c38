"""Chaos: a steady load while workers are killed and restarted every few seconds loses, repeats and fails nothing."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from swarm.client import SwarmCallError
from swarm.launch.local_swarm import wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm
from tests.greedy_check import DEFAULT_TOLERANCE, GreedyReference

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
    reference = GreedyReference(swarm.model)

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

    def run(i: int) -> tuple[list[int], str | None, int]:
        """(token ids, error, finishes) of request i."""
        prompt, tokens, finishes = prompts[i % len(prompts)], [], 0
        try:
            with swarm.client() as client:
                for event in client.stream(prompt, max_tokens=MAX_TOKENS, temperature=0.0, request_id=f"chaos-{i}"):
                    if isinstance(event, TextPiece):
                        tokens += event.token_ids
                    elif isinstance(event, Finished):
                        finishes += 1
        except SwarmCallError as exc:
            return tokens, str(exc), finishes
        return tokens, None, finishes

    def greedy(i: int, tokens: list[int]) -> bool:
        """Exactly MAX_TOKENS tokens, each greedy's choice up to a rounding tie (requests share batches)."""
        if len(tokens) != MAX_TOKENS:
            return False
        return max(reference.margins(prompts[i % len(prompts)], tokens)) <= DEFAULT_TOLERANCE

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
    wrong = [i for i, (tokens, error, _) in enumerate(results) if error is None and not greedy(i, tokens)]
    duplicated = len(wrong)
    examples = [
        (i, len(results[i][0]), max(reference.margins(prompts[i % len(prompts)], results[i][0]))) for i in wrong[:3]
    ]
    reference.close()
    print(f"requests={REQUESTS} kills={kills} lost={lost} duplicated={duplicated} failed={len(failed)}")
    assert kills >= 2, "the load ended before the chaos began: nothing was tested"
    assert (lost, duplicated, len(failed)) == (0, 0, 0), (failed[:3], examples)  # (request, tokens, worst margin)
    log = swarm.coordinator.log_path.read_text() if swarm.coordinator.log_path else ""
    assert "resuming it elsewhere" in log, "no kill hit a running request: failover was not exercised"
    wait_until(lambda: len(swarm.up_workers()) == 3, 30, "every worker back up")
