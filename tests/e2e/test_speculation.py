"""Speculative decoding through a real swarm: counts in every Finished, the switches, and failover mid-stream."""

from __future__ import annotations

import json
import random
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

from swarm.client import SwarmClient
from swarm.launch.local_swarm import free_port, wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm, serving_worker
from tests.e2e.test_failover import MakeSwarm, worker_up
from tests.greedy_check import GreedyReference

REPEATING = "a b c d a b c d a b c d a b c"


def proposed_on(metrics: str) -> float:
    """The worker's count of proposed tokens, scraped from its /metrics."""
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as scrape:
        text = scrape.read().decode()
    found = re.search(r"^swarm_worker_speculation_proposed_tokens_total (\S+)$", text, re.MULTILINE)
    assert found is not None, "the worker's /metrics lacks the speculation counters"
    assert "swarm_worker_speculation_accepted_tokens_total" in text
    return float(found.group(1))


def stream_killing(
    client: SwarmClient, request_id: str, kill_after: int, kill: Callable[[], str]
) -> tuple[list[int], Finished, str, int]:
    """Streams REPEATING greedily and calls kill once kill_after tokens arrived; returns the tokens, the finish,
    what died, and how many tokens had arrived when it died."""
    tokens: list[int] = []
    killed, arrived = "", 0
    finished = None
    for event in client.stream(REPEATING, max_tokens=300, temperature=0.0, request_id=request_id):
        if isinstance(event, TextPiece):
            tokens += event.token_ids
            if not killed and len(tokens) >= kill_after:
                killed, arrived = kill(), len(tokens)
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None, "the stream ended without a finish"
    return tokens, finished, killed, arrived


def completion_text(swarm: RunningSwarm, body: dict[str, object]) -> str:
    request = urllib.request.Request(
        f"http://{swarm.http}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["choices"][0]["text"])


def test_finished_counts_proposals_and_every_switch_turns_them_off(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    metrics = f"127.0.0.1:{free_port()}"
    speculating = swarm.add_worker("--speculate", "always", "--metrics", metrics, name="speculating")
    swarm.wait_for_workers(1)
    with swarm.client() as client:
        fast = client.generate(REPEATING, max_tokens=64, temperature=0.0)
        assert fast.finished.proposed_tokens > 0
        assert 0 <= fast.finished.accepted_tokens <= fast.finished.proposed_tokens
        assert proposed_on(metrics) >= fast.finished.proposed_tokens
        plain = client.generate(REPEATING, max_tokens=64, temperature=0.0, speculate=False)
        assert plain.text == fast.text
        assert (plain.finished.proposed_tokens, plain.finished.accepted_tokens) == (0, 0)
        before = proposed_on(metrics)
        body = {"prompt": REPEATING, "max_tokens": 64, "temperature": 0}
        assert completion_text(swarm, {**body, "speculate": False}) == fast.text
        assert proposed_on(metrics) == before  # the OpenAI extension field reached the worker
        assert completion_text(swarm, body) == fast.text
        assert proposed_on(metrics) > before

        speculating.stop()
        swarm.add_worker("--speculate", "off", name="plain")
        wait_until(lambda: len(swarm.up_workers()) == 1 and not speculating.alive, 60, "only the plain worker up")
        off = client.generate(REPEATING, max_tokens=64, temperature=0.0)
        assert off.text == fast.text
        assert off.finished.proposed_tokens == 0


def test_a_worker_killed_while_speculating_hands_its_stream_on_unchanged(
    make_swarm: MakeSwarm, redis_url: str, slow_model: Path
) -> None:
    """The slow model has near ties (margins of a few hundredths), where a step with proposal rows may round to
    the other side (and how many rows a step has depends on measured timings): its greedy text is checked token
    by token against llama.cpp (GreedyReference) rather than against one run's text."""
    swarm = make_swarm(workers=0, model=slow_model)
    workers = {
        name: swarm.add_worker(
            "--worker-id", name, "--slots", "2", "--context", "1024", "--speculate", "always", name=name
        )
        for name in ("w-a", "w-b")
    }
    swarm.wait_for_workers(2)
    rng = random.Random(16)
    reference = GreedyReference(slow_model, n_ctx=1024)
    try:
        with swarm.client() as client:
            unfailed = client.generate(REPEATING, max_tokens=300, temperature=0.0)
            assert unfailed.finished.proposed_tokens > 0  # this stream speculates on these workers
            for round_ in range(3):
                request_id = f"speculating-{round_}"

                def kill(request_id: str = request_id) -> str:
                    victim = serving_worker(redis_url, request_id)
                    workers[victim].kill()
                    return victim

                tokens, finished, killed, arrived = stream_killing(client, request_id, rng.randrange(10, 150), kill)
                assert 0 < arrived < 300
                reference.check(REPEATING, tokens)
                assert finished.completion_tokens == len(tokens) == 300
                assert finished.worker_id != killed, f"round {round_}: the kill came after the end; no failover tested"
                workers[killed].start()
                wait_until(lambda killed=killed: worker_up(client, killed), 30, f"{killed} back up")
    finally:
        reference.close()
