"""A coordinator SIGKILLed mid-stream: a client reattaching to the restarted one gets exactly an unfailed run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
PROMPT = "Once upon a time"
MAX_TOKENS = 200
KILL_AFTER = (40, 120)  # tokens received before each SIGKILL


def test_a_client_reattaching_after_coordinator_sigkills_gets_exactly_the_unfailed_tokens(
    make_swarm: MakeSwarm, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)
    # One slot: the reference and every resumed run are single streams, so greedy output is bit-identical.
    swarm.add_worker("--slots", "1", "--context", "1024", name="w")
    swarm.wait_for_workers(1)
    with swarm.client() as client:
        reference = client.generate(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0)
    assert reference.finished.completion_tokens == MAX_TOKENS

    tokens: list[int] = []
    text = ""
    finished = None
    kills = list(KILL_AFTER)
    with swarm.client(retries=30) as client:
        for event in client.stream(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0, request_id="restart-1"):
            if isinstance(event, TextPiece):
                tokens.extend(event.token_ids)
                text += event.text
                if kills and len(tokens) >= kills[0]:
                    kills.pop(0)
                    swarm.coordinator.kill()
                    swarm.start_coordinator()
            elif isinstance(event, Finished):
                finished = event
    assert not kills, f"the stream ended after {len(tokens)} tokens, before every kill"
    assert finished is not None
    assert tuple(tokens) == reference.token_ids  # no token lost, none repeated
    assert text == reference.text
    assert finished.completion_tokens == MAX_TOKENS
    log = swarm.coordinator.log_path.read_text() if swarm.coordinator.log_path else ""
    resumed_after = [int(n) for n in re.findall(r"requeueing restart-1 after (\d+) pieces", log)]
    # The first kill lands mid-run, so a restarted coordinator takes the request over. By the second,
    # the resumed run may have finished while the client was reconnecting (it then reads the kept result).
    assert 1 <= len(resumed_after) <= len(KILL_AFTER), "a restarted coordinator takes the running request over"
    assert min(resumed_after) > 0, "a restarted coordinator ran the request again from its start"
