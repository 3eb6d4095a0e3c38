"""Usage accounting end to end: tokens counted exactly once per token clients received, across a worker's and
a coordinator's death mid-stream, and cost per million tokens from the workers' stated rates and busy time."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from swarm.client import SwarmClient
from swarm.client.usage_client import fetch_usage
from swarm.coordinator.request_identity import owner_of_key, scoped_request_id
from swarm.launch.local_swarm import ManagedProcess, free_port, wait_until
from swarm.shared.types import Finished, TextPiece
from swarm.shared.usage_cost import cost_report
from tests.conftest import RunningSwarm, coordinator_answers, serving_worker
from tests.e2e.test_client_failover import swarm_cli
from tests.e2e.test_coordinator_restart import MakeSwarm

pytestmark = pytest.mark.timeout(150)

PROMPT = "Once upon a time"
MAX_TOKENS = 40
KEYS = ("usage-key-a", "usage-key-b")
WATTS, COST_PER_HOUR = 65.0, 0.02


def tenant_of(key: str) -> str:
    return f"key-{owner_of_key(key)[:8]}"


@dataclass
class Received:
    """What clients of one tenant received, counted on the client side."""

    completion: int = 0
    prompt: int = 0
    requests: int = 0
    finished: list[Finished] = field(default_factory=list)

    def stream(self, client: SwarmClient, request_id: str, kill_after: int = 0, kill: object = None) -> None:
        tokens = 0
        killed = False
        for event in client.stream(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0, request_id=request_id):
            if isinstance(event, TextPiece):
                tokens += len(event.token_ids)
                if kill_after and not killed and tokens >= kill_after:
                    killed = True
                    kill()  # type: ignore[operator]
            elif isinstance(event, Finished):
                self.finished.append(event)
                self.prompt += event.prompt_tokens
        self.completion += tokens
        self.requests += 1


def restart(process: ManagedProcess) -> None:
    process.kill()
    process.start()


def test_usage_is_exact_after_a_worker_and_a_coordinator_die_mid_stream(
    make_swarm: MakeSwarm, redis_url: str, slow_model: Path
) -> None:
    key_flags = tuple(arg for key in KEYS for arg in ("--api-key", key))
    swarm: RunningSwarm = make_swarm(
        workers=0, model=slow_model, coordinator_args=key_flags, client_options={"api_key": KEYS[0]}
    )
    b_address = f"127.0.0.1:{free_port()}"
    swarm.processes.start_coordinator(b_address, f"127.0.0.1:{free_port()}", *key_flags, name="coord-b")
    wait_until(lambda: coordinator_answers(b_address, api_key=KEYS[0]), 30, "coordinator B")
    coordinators = f"{swarm.address},{b_address}"
    rates = ("--watts", str(WATTS), "--cost-per-hour", str(COST_PER_HOUR))
    workers = {
        name: swarm.processes.start_worker(
            coordinators,
            slow_model,
            "--threads",
            "1",
            "--slots",
            "1",
            "--context",
            "1024",
            *rates,
            "--worker-id",
            name,
            name=name,
        )
        for name in ("w-a", "w-b")
    }
    swarm.wait_for_workers(2)
    started = time.monotonic()
    received = {key: Received() for key in KEYS}
    key_a, key_b = KEYS

    with SwarmClient(coordinators, api_key=key_a, retries=10) as client:
        received[key_a].stream(client, "plain-a")

        victims: list[str] = []

        def kill_worker() -> None:
            victims.append(serving_worker(redis_url, scoped_request_id(owner_of_key(key_a), "worker-dies")))
            restart(workers[victims[0]])

        received[key_a].stream(client, "worker-dies", kill_after=8, kill=kill_worker)
        assert received[key_a].finished[-1].worker_id != victims[0], "the kill came after the end: no failover"
    with SwarmClient([swarm.address, b_address], api_key=key_b, retries=10) as client:
        received[key_b].stream(client, "plain-b")
        # The stream starts on the first address (swarm.address): that coordinator is SIGKILLed mid-stream.
        received[key_b].stream(client, "coordinator-dies", kill_after=8, kill=lambda: restart(swarm.coordinator))
        assert client.address == b_address, "the stream ended before its coordinator died: no failover"
    wait_until(lambda: coordinator_answers(swarm.address, api_key=key_a), 30, "coordinator A back")
    for key in KEYS:
        assert all(f.completion_tokens == MAX_TOKENS for f in received[key].finished), received[key].finished

    usage = fetch_usage(b_address, api_key=key_a)
    by_tenant = usage.by_tenant()
    for key in KEYS:
        counted = by_tenant[tenant_of(key)]
        mine = received[key]
        assert (counted.completion, counted.prompt, counted.requests) == (mine.completion, mine.prompt, mine.requests)
    assert set(by_tenant) == {tenant_of(k) for k in KEYS}  # never the secret, never a stray tenant
    shown = swarm_cli("usage", "--coordinator", b_address, "--api-key", key_a, "--json", "--key", tenant_of(key_b))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["tenants"][tenant_of(key_b)]["completion"] == received[key_b].completion
    assert list(json.loads(shown.stdout)["tenants"]) == [tenant_of(key_b)]
    table = swarm_cli("usage", "--coordinator", b_address, "--api-key", key_a, "--since", "2h")
    assert table.returncode == 0 and tenant_of(key_a) in table.stdout and key_a not in table.stdout, table

    # Cost per million tokens, by hand, from the rates the workers stated and the busy time they measured.
    def busy_reported() -> bool:
        report = fetch_usage(b_address, api_key=key_a)
        return bool(report.workers) and all(w.busy_s > 0 for w in report.workers)

    wait_until(busy_reported, 15, "the workers' busy time in a heartbeat")
    usage = fetch_usage(b_address, api_key=key_a)
    elapsed = time.monotonic() - started
    costs = cost_report(usage)
    tokens_on = Counter[str]()
    for row in usage.rows:
        tokens_on[row.worker] += row.tokens.completion
    for busy in usage.workers:
        assert (busy.watts, busy.cost_per_hour) == (WATTS, COST_PER_HOUR)
        assert 0 < busy.busy_s < elapsed
        by_hand = busy.busy_s / 3600 * COST_PER_HOUR / tokens_on[busy.worker] * 1e6 if tokens_on[busy.worker] else None
        figures = costs.by_worker[busy.worker]
        assert figures.cost_per_million == pytest.approx(by_hand)
        assert figures.energy_wh == pytest.approx(busy.busy_s / 3600 * WATTS)
    total_cost = sum(b.busy_s / 3600 * COST_PER_HOUR for b in usage.workers)
    assert costs.swarm.cost_per_million == pytest.approx(total_cost / sum(tokens_on.values()) * 1e6)
