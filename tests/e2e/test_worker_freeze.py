"""A frozen worker (SIGSTOP: hung, or its link cut): its stream continues elsewhere, and thawed it serves again."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from swarm.launch.local_swarm import wait_until
from tests.conftest import RunningSwarm, serving_worker
from tests.e2e.test_failover import MAX_TOKENS, PROMPT, stream_killing, worker_up

MakeSwarm = Callable[..., RunningSwarm]


def test_a_frozen_worker_s_stream_continues_elsewhere_and_thawed_it_serves_on_a_fresh_relay(
    make_swarm: MakeSwarm, redis_url: str, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)
    workers = {
        name: swarm.add_worker("--worker-id", name, "--slots", "2", "--context", "1024", name=name)
        for name in ("frozen-a", "frozen-b")
    }
    swarm.wait_for_workers(2)
    frozen: list[str] = []

    def freeze() -> str:
        victim = serving_worker(redis_url, "frozen-1")
        os.kill(workers[victim].pid, signal.SIGSTOP)
        frozen.append(victim)
        return victim

    try:
        with swarm.client() as client:
            reference = client.generate(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0)
            text, finished, victim = stream_killing(client, "frozen-1", 20, freeze)
            assert text == reference.text, "the text differs after its worker froze"
            assert finished.worker_id != victim, "the stream ended before the freeze; no failover tested"
            os.kill(workers[victim].pid, signal.SIGCONT)
            frozen.clear()
            wait_until(lambda: worker_up(client, victim), 30, f"{victim} back up after thawing")
            # The other worker gone, the next request can only run on the thawed one, over a new relay stream.
            other = next(name for name in workers if name != victim)
            workers[other].kill()
            wait_until(lambda: not worker_up(client, other), 30, f"{other} down")
            again = client.generate(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0)
            assert again.finished.worker_id == victim
            assert again.text == reference.text
    finally:
        for name in frozen:
            os.kill(workers[name].pid, signal.SIGCONT)
