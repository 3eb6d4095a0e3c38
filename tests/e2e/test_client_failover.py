"""Clients given several coordinator addresses: a dead one never shows; a killed one's stream continues exactly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
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
    b_address = f"127.0.0.1:{free_port()}"
    swarm.processes.start_coordinator(b_address, "", name="coordinator-b")
    with swarm.client() as direct:
        reference = direct.generate(PROMPT, max_tokens=24, temperature=0.0)
    # The dead address comes first, so every fresh client meets it.
    addresses = [dead_address(), swarm.address, b_address]
    with SwarmClient(f"dns:///localhost:{swarm.address.rpartition(':')[2]}", retries=0) as by_name:
        assert by_name.generate(PROMPT, max_tokens=24, temperature=0.0).token_ids == reference.token_ids

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


def test_a_stream_continues_on_another_live_coordinator_when_its_own_is_sigkilled(
    make_swarm: MakeSwarm, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model)  # coordinator A
    b_address = f"127.0.0.1:{free_port()}"
    swarm.processes.start_coordinator(b_address, "", name="coordinator-b")
    # The worker heartbeats through B, which lives on; A dispatches to it through the shared registry.
    swarm.processes.start_worker(b_address, slow_model, "--threads", "1", "--slots", "1", "--context", "1024")
    swarm.wait_for_workers(1)
    with SwarmClient(b_address) as client:
        reference = client.generate(PROMPT, max_tokens=100, temperature=0.0)
    assert reference.finished.completion_tokens == 100

    tokens: list[int] = []
    finished = None
    killed_at = 0.0
    gap_s = 0.0
    with SwarmClient([swarm.address, b_address], retries=10) as client:
        for event in client.stream(PROMPT, max_tokens=100, temperature=0.0, request_id="failover-2"):
            if isinstance(event, TextPiece):
                if killed_at and not gap_s:
                    gap_s = time.monotonic() - killed_at
                tokens.extend(event.token_ids)
                if not killed_at and len(tokens) >= 30:
                    assert client.address == swarm.address, "the stream starts on the first address"
                    swarm.coordinator.kill()
                    killed_at = time.monotonic()
            elif isinstance(event, Finished):
                finished = event
        assert client.address == b_address
    assert killed_at, "the stream ended before the kill"
    assert finished is not None
    assert tuple(tokens) == reference.token_ids  # no token lost, none repeated
    assert finished.completion_tokens == 100
    print(f"first token through coordinator B {gap_s:.2f} s after A was killed")
