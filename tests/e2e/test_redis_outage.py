"""Redis stopped under a running swarm: calls answer UNAVAILABLE naming Redis (clients retry it), then serve again."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarm.client import SwarmCallError
from swarm.launch.local_swarm import LocalSwarm, ManagedProcess, free_port
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(180)

PASSWORD = "outage-secret-4f1c"


@dataclass
class OwnRedis:
    """A redis-server of the test's own (never the session's, which other tests share), to stop and start again."""

    server: ManagedProcess
    data_dir: Path
    port: int
    restarts: LocalSwarm

    def restart(self) -> None:
        self.restarts.start_redis(self.data_dir, port=self.port, password=PASSWORD)


@pytest.fixture
def swarm_on_own_redis(tmp_path: Path, tiny_model: Path) -> Iterator[tuple[RunningSwarm, OwnRedis]]:
    processes, restarts = LocalSwarm(log_dir=tmp_path), LocalSwarm(log_dir=tmp_path)
    try:
        port = free_port()
        processes.start_redis(tmp_path / "redis", port=port, password=PASSWORD)
        redis = OwnRedis(processes.processes[-1], tmp_path / "redis", port, restarts)
        address, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        coordinator = processes.start_coordinator(address, http)
        swarm = RunningSwarm(processes, address, http, tiny_model, coordinator)
        swarm.wait_for_coordinator()
        swarm.add_worker("--slots", "2")
        swarm.wait_for_workers(1)
        yield swarm, redis
    finally:
        processes.stop()
        restarts.stop()


def grpc_outcome(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except SwarmCallError as error:
        return error.code, error.details
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def http_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_calls_answer_unavailable_naming_redis_while_it_is_down_and_succeed_once_it_is_back(
    swarm_on_own_redis: tuple[RunningSwarm, OwnRedis],
) -> None:
    swarm, redis = swarm_on_own_redis
    with swarm.client(retries=0) as client:
        before = client.generate("Once upon a time", max_tokens=4, temperature=0)
    assert before.finished.completion_tokens == 4

    redis.server.stop()
    with swarm.client(retries=0) as client, grpc.insecure_channel(swarm.address) as channel:
        registry, batch = pb_grpc.RegistryStub(channel), pb_grpc.BatchStub(channel)
        joining = pb.WorkerInfo(address="127.0.0.1:1", model="tiny", slots=1)
        calls: dict[str, Callable[[], object]] = {
            "Generate": lambda: client.generate("Once upon a time", max_tokens=4, temperature=0),
            "GetStatus": client.status,
            "ListModels": client.list_models,
            "Join": lambda: registry.Join(pb.JoinRequest(info=joining), timeout=30),
            "Heartbeat": lambda: registry.Heartbeat(pb.HeartbeatRequest(worker_id="worker-x"), timeout=30),
            "ListBatches": lambda: batch.ListBatches(pb.BatchListRequest(), timeout=30),
            "GetBatchResults": lambda: list(batch.GetBatchResults(pb.BatchResultsRequest(job_id="b1"), timeout=30)),
        }
        for name, call in calls.items():
            code, details = grpc_outcome(call)
            assert code is grpc.StatusCode.UNAVAILABLE, (name, code, details)
            assert "Redis" in details and "retry" in details, (name, details)
            assert PASSWORD not in details, name

    status, body = http_get(f"http://{swarm.http}/v1/models")
    assert status == 503, body
    assert body["error"]["type"] == "server_error" and "Redis" in body["error"]["message"], body
    status, body = http_get(f"http://{swarm.http}/status")
    assert status == 503 and "Redis" in body["error"], body
    assert PASSWORD not in json.dumps(body)
    assert swarm.coordinator.alive

    redis.restart()
    swarm.wait_for_workers(1)
    with swarm.client(retries=0) as client:
        after = client.generate("Once upon a time", max_tokens=4, temperature=0)
    assert after.text == before.text
    assert requests_by_status(swarm.http) == {"ok": 2, "unavailable": 1}  # as the client was told, not "internal"


def requests_by_status(http: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=30) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "swarm_requests_total":
                counts[sample.labels["status"]] = counts.get(sample.labels["status"], 0.0) + sample.value
    return counts
