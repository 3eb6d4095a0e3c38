"""Clients given several coordinator addresses: a dead one never shows; a killed one's stream continues exactly."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from swarm.client import AsyncSwarmClient, SwarmClient
from swarm.launch.local_swarm import free_port, swarm_argv
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
PROMPT = "Once upon a time"


def dead_address() -> str:
    """A loopback port nobody listens on: connecting to it is refused."""
    return f"127.0.0.1:{free_port()}"


def swarm_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        swarm_argv(*args),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
    )


def test_three_addresses_with_a_dead_one_never_show_the_user_an_error(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    with swarm.client() as direct:
        reference = direct.generate(PROMPT, max_tokens=24, temperature=0.0)
    # The dead address comes first, so every fresh client meets it; the live coordinator is named twice,
    # the second time as a DNS target that round-robins over what localhost resolves to.
    port = swarm.address.rpartition(":")[2]
    addresses = [dead_address(), swarm.address, f"dns:///localhost:{port}"]

    # retries=0: a single round over the addresses is enough, with no backoff to hide behind
    with SwarmClient(addresses, retries=0) as client:
        assert client.status().workers
        assert client.list_models()
        streamed = [e for e in client.stream(PROMPT, max_tokens=24, temperature=0.0)]
        assert client.generate(PROMPT, max_tokens=24, temperature=0.0).token_ids == reference.token_ids
        assert client.address == swarm.address
    assert tuple(t for e in streamed if isinstance(e, TextPiece) for t in e.token_ids) == reference.token_ids
    assert isinstance(streamed[-1], Finished)

    async def through_async() -> tuple[int, ...]:
        async with AsyncSwarmClient(",".join(addresses), retries=0) as client:
            assert (await client.status()).workers
            pieces = [e async for e in client.stream(PROMPT, max_tokens=24, temperature=0.0)]
            completion = await client.generate(PROMPT, max_tokens=24, temperature=0.0)
            assert completion.token_ids == reference.token_ids
            return tuple(t for e in pieces if isinstance(e, TextPiece) for t in e.token_ids)

    assert asyncio.run(through_async()) == reference.token_ids

    listed = ",".join(addresses[:2])
    generated = swarm_cli("generate", "--coordinator", listed, "--temperature", "0", "--max-tokens", "24", PROMPT)
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout == reference.text + "\n"
    status = swarm_cli("status", "--json", env={"SWARM_COORDINATOR": listed})
    assert status.returncode == 0, status.stderr
    assert '"workers"' in status.stdout
    batches = swarm_cli("batch", "list", "--coordinator", listed)
    assert batches.returncode == 0, batches.stderr


def test_a_stream_whose_coordinator_is_killed_continues_through_the_next_address_exactly(
    make_swarm: MakeSwarm, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)
    # One slot: the reference and the resumed run are single streams, so greedy output is bit-identical.
    swarm.add_worker("--slots", "1", "--context", "1024", name="w")
    swarm.wait_for_workers(1)
    with swarm.client() as client:
        reference = client.generate(PROMPT, max_tokens=100, temperature=0.0)
    assert reference.finished.completion_tokens == 100

    tokens: list[int] = []
    finished = None
    killed = False
    # The dead address comes first, and the client meets it on every round while the coordinator restarts.
    with SwarmClient([dead_address(), swarm.address], retries=30) as client:
        for event in client.stream(PROMPT, max_tokens=100, temperature=0.0, request_id="failover-1"):
            if isinstance(event, TextPiece):
                tokens.extend(event.token_ids)
                if not killed and len(tokens) >= 30:
                    killed = True
                    swarm.coordinator.kill()
                    swarm.start_coordinator()
            elif isinstance(event, Finished):
                finished = event
    assert killed, "the stream ended before the kill"
    assert finished is not None
    assert tuple(tokens) == reference.token_ids  # no token lost, none repeated
    assert finished.completion_tokens == 100
