"""Misuse from outside against real processes: numbers past their wire range, text that is no unicode, deep JSON,
half-sent requests, Redis down or full; each gets a precise answer and leaves nothing running."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis

from swarm.client import BatchClient, SwarmCallError
from swarm.launch.local_swarm import LocalSwarm, free_port
from swarm.shared.batch_types import BatchLine
from swarm.shared.types import RawRequest
from tests.conftest import RunningSwarm
from tests.coordinator.test_metrics import scrape, value

MakeSwarm = Callable[..., RunningSwarm]

pytestmark = pytest.mark.timeout(120)


def post(swarm: RunningSwarm, path: str, data: bytes) -> tuple[int, dict[str, Any]]:
    """The status and JSON body; a hung request fails the test by its timeout instead of hanging it."""
    request = urllib.request.Request(
        f"http://{swarm.http}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def http_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("field", "number"),
    [
        ("top_k", 2**40),
        ("top_k", 2**32),
        ("max_tokens", 2**40),
        ("seed", 2**64),
        ("temperature", 1e39),
        ("min_p", 0.99999999),  # 1.0 as the wire's 32-bit float, out of [0, 1)
    ],
)
def test_http_numbers_past_their_wire_range_are_400s_naming_the_field(
    make_swarm: MakeSwarm, field: str, number: float
) -> None:
    swarm = make_swarm(workers=1)
    body = json.dumps({"prompt": "Hi", "max_tokens": 2, field: number}).encode()
    status, reply = post(swarm, "/v1/completions", body)
    assert status == 400, reply
    assert reply["error"]["param"] == field, reply
    assert value(scrape(swarm.http), "swarm_requests_in_progress") == 0
    assert post(swarm, "/v1/completions", json.dumps({"prompt": "Hi", "max_tokens": 2}).encode())[0] == 200
    assert "Traceback" not in swarm.coordinator.log_path.read_text()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"prompt": "Hi \\ud800", "max_tokens": 2}', "lone surrogate"),
        (b'{"model": "", "messages": [{"role": "user", "content": "Hi \\udfff"}]}', "lone surrogate"),
        (b"[" * 5000, "nests deeper"),
        (b'{"prompt": "Hi", "stop": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nests deeper"),
    ],
)
def test_text_that_is_no_unicode_and_deep_json_are_400s_saying_so(
    make_swarm: MakeSwarm, body: bytes, says: str
) -> None:
    swarm = make_swarm(workers=0)
    for path in ("/v1/completions", "/v1/chat/completions"):
        status, reply = post(swarm, path, body)
        assert status == 400, reply
        assert says in reply["error"]["message"], reply
    assert "Traceback" not in swarm.coordinator.log_path.read_text()  # type: ignore[union-attr]


def test_a_half_sent_request_is_closed_within_the_header_timeout(make_swarm: MakeSwarm) -> None:
    idle_timeout_s = 2.0
    swarm = make_swarm(workers=0, coordinator_args=("--http-idle-timeout", str(idle_timeout_s)))
    host, port = swarm.http.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as half_sent:
        half_sent.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Len")
        half_sent.settimeout(idle_timeout_s + 10)
        started = time.monotonic()
        assert half_sent.recv(1024) == b""  # closed by the server, not timed out here (that raises)
        assert idle_timeout_s - 0.5 < time.monotonic() - started < idle_timeout_s + 5


@pytest.fixture
def own_redis_swarm(tmp_path: Path, tiny_model: Path) -> Iterator[tuple[RunningSwarm, LocalSwarm, str]]:
    """A coordinator on a redis-server of the test's own (never the session's, which other tests share)."""
    processes, redis_process = LocalSwarm(log_dir=tmp_path), LocalSwarm(log_dir=tmp_path)
    try:
        url = redis_process.start_redis(tmp_path / "redis")
        processes.redis_url = url
        address, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        swarm = RunningSwarm(processes, address, http, tiny_model, processes.start_coordinator(address, http))
        swarm.wait_for_coordinator()
        yield swarm, redis_process, url
    finally:
        processes.stop()
        redis_process.stop()


def test_healthz_is_503_naming_redis_while_redis_is_down(
    own_redis_swarm: tuple[RunningSwarm, LocalSwarm, str],
) -> None:
    swarm, redis_process, _ = own_redis_swarm
    assert http_get(f"http://{swarm.http}/healthz") == (200, {"status": "ok"})
    redis_process.stop()
    started = time.monotonic()
    status, reply = http_get(f"http://{swarm.http}/healthz")
    assert status == 503, reply
    assert reply["status"] == "unavailable" and "Redis" in reply["reason"], reply
    assert time.monotonic() - started < 10


def test_a_full_redis_refuses_batches_with_resource_exhausted_and_interactive_requests_still_run(
    own_redis_swarm: tuple[RunningSwarm, LocalSwarm, str],
) -> None:
    swarm, _, url = own_redis_swarm
    swarm.add_worker()
    swarm.wait_for_workers(1)
    admin = redis.Redis.from_url(url)
    try:
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory-policy", "noeviction")
        # Room for 4 MB more: a 6 MB job would take the share kept for heartbeats and interactive requests.
        admin.config_set("maxmemory", str(used + 4 * 1024 * 1024))
        lines = [BatchLine(RawRequest(prompt="x" * 2000, max_tokens=1)) for _ in range(3000)]
        with BatchClient(swarm.address) as batches, pytest.raises(SwarmCallError) as refused:
            batches.submit(lines)
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
        assert "Redis is full" in refused.value.details and "maxmemory" in refused.value.details
        assert int(admin.info("memory")["used_memory"]) < used + 1024 * 1024  # the refused job left nothing behind
        with swarm.client() as client:
            assert client.generate("Hello", max_tokens=3, temperature=0.0).finished.completion_tokens == 3
    finally:
        admin.close()
    assert "Traceback" not in swarm.coordinator.log_path.read_text()  # type: ignore[union-attr]
