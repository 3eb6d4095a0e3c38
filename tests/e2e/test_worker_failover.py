"""A worker given two coordinators: the one it joined through is SIGKILLed, and it heartbeats through the other."""

from __future__ import annotations

import time

from swarm.client import SwarmCallError, SwarmClient
from swarm.launch.local_swarm import free_port, wait_until
from tests.conftest import RunningSwarm, coordinator_answers
from tests.e2e.test_coordinator_restart import MakeSwarm

HEARTBEAT_TTL_S = 3.0  # the coordinators' default


def worker_seen_by(address: str, worker_id: str) -> tuple[bool, float] | None:
    """(up, heartbeat age) of the worker as the coordinator at address reports it; None when it lists none."""
    with SwarmClient(address, retries=0) as client:
        try:
            workers = client.status().workers
        except SwarmCallError:
            return None
    return next(((w.up, w.heartbeat_age_s) for w in workers if w.info.worker_id == worker_id), None)


def test_a_worker_whose_coordinator_is_sigkilled_heartbeats_through_another_and_serves_there(
    make_swarm: MakeSwarm,
) -> None:
    swarm: RunningSwarm = make_swarm(workers=0)  # coordinator A, the first address: the worker joins through it
    b_address = f"127.0.0.1:{free_port()}"
    swarm.processes.start_coordinator(b_address, "", name="coordinator-b")
    wait_until(lambda: coordinator_answers(b_address), 30, "coordinator B")
    worker = swarm.processes.start_worker(
        f"{swarm.address},{b_address}",
        swarm.model,
        "--threads",
        "1",
        "--slots",
        "2",
        "--context",
        "512",
        "--worker-id",
        "roaming",
        name="worker",
    )
    wait_until(lambda: (worker_seen_by(b_address, "roaming") or (False,))[0], 60, "the worker up")
    assert worker.log_path is not None
    log_path, joined = worker.log_path, f"joined coordinator {swarm.address} as roaming"
    # Redis may show it up a moment before it logs the join: wait for the line, not just the registry.
    wait_until(lambda: joined in log_path.read_text(), 30, "the worker to log its join through A")

    swarm.coordinator.kill()
    # Past the TTL the worker's entry would have expired had its heartbeats stopped with A.
    watch_until = time.monotonic() + HEARTBEAT_TTL_S + 2.0
    while time.monotonic() < watch_until:
        seen = worker_seen_by(b_address, "roaming")
        assert seen is not None and seen[0], f"the worker went down after its coordinator died: {seen}"
        assert seen[1] < HEARTBEAT_TTL_S
        time.sleep(0.2)
    assert worker.alive
    assert f"heartbeating through {b_address}" in worker.log_path.read_text()

    with SwarmClient(b_address) as client:
        completion = client.generate("Once upon a time", max_tokens=8, temperature=0.0)
    assert len(completion.token_ids) == 8
