"""API keys created at run time, held to their limits by two coordinators sharing one Redis.

Each limit is spent through one coordinator and found spent through the other; a revoke or an
expiry refuses the key at once on both; keys are created with the admin API (and its CLI).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from swarm.cli.main import main
from swarm.client import BatchClient, SwarmCallError, SwarmClient
from swarm.launch.local_swarm import free_port, wait_until
from swarm.shared.batch_types import BatchLine
from swarm.shared.types import RawRequest, TextPiece
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm, coordinator_answers
from tests.e2e.test_coordinator_restart import MakeSwarm

pytestmark = pytest.mark.timeout(120)

ADMIN_KEY = "admin-static-key"


@dataclass
class TwoCoordinators:
    swarm: RunningSwarm
    a: str  # gRPC addresses
    b: str
    http_a: str
    http_b: str
    model: str

    def admin(self, address: str | None = None, key: str = ADMIN_KEY) -> AdminCalls:
        return AdminCalls(address or self.a, key)

    def create(self, name: str, **settings: Any) -> str:
        """A new key's secret."""
        return str(self.admin().call("CreateKey", pb.CreateKeyRequest(name=name, **settings)).secret)

    def client(self, address: str, key: str) -> SwarmClient:
        return SwarmClient(address, api_key=key, retries=0)


class AdminCalls:
    def __init__(self, address: str, key: str) -> None:
        self.address, self.key = address, key

    def call(self, method: str, request: Any) -> Any:
        with grpc.insecure_channel(self.address) as channel:
            metadata = (("authorization", f"Bearer {self.key}"),) if self.key else ()
            return getattr(pb_grpc.AdminStub(channel), method)(request, metadata=metadata, timeout=10)


def start_two(make_swarm: MakeSwarm, model: Path | None = None, slots: int = 4) -> TwoCoordinators:
    swarm: RunningSwarm = make_swarm(
        workers=0, model=model, coordinator_args=("--api-key", ADMIN_KEY), client_options={"api_key": ADMIN_KEY}
    )
    b, http_b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    swarm.processes.start_coordinator(b, http_b, "--api-key", ADMIN_KEY, name="coordinator-b")
    swarm.processes.start_worker(
        f"{swarm.address},{b}", swarm.model, "--threads", "1", "--slots", str(slots), "--context", "512", name="w0"
    )
    swarm.wait_for_workers(1)
    wait_until(lambda: coordinator_answers(b, api_key=ADMIN_KEY), 30, "coordinator B")
    return TwoCoordinators(swarm, swarm.address, b, swarm.http, http_b, swarm.model.stem)


def refusal(call: Any) -> SwarmCallError:
    with pytest.raises(SwarmCallError) as refused:
        call()
    return refused.value


def generate(client: SwarmClient, max_tokens: int = 4) -> int:
    """Completion tokens of one short greedy generation."""
    return client.generate("Once upon a time", max_tokens=max_tokens, temperature=0.0).finished.completion_tokens


def test_requests_and_tokens_per_minute_are_spent_across_both_coordinators(make_swarm: MakeSwarm) -> None:
    two = start_two(make_swarm)
    key = two.create("rpm", requests_per_minute=3)
    with two.client(two.a, key) as on_a, two.client(two.b, key) as on_b:
        generate(on_a)
        generate(on_b)
        generate(on_a)
        refused = refusal(lambda: generate(on_b))
        assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "'rpm' is over its limit of 3 requests per minute" in refused.details
        assert refusal(lambda: generate(on_a)).code is grpc.StatusCode.RESOURCE_EXHAUSTED
    # The refusal tells when to come back: a request comes back every 20 s (60 s / 3).
    with grpc.insecure_channel(two.b) as channel, pytest.raises(grpc.RpcError) as raw_refusal:
        request = pb.GenerateRequest(prompt="Hi", max_tokens=2)
        list(pb_grpc.InferenceStub(channel).Generate(request, metadata=(("authorization", f"Bearer {key}"),)))
    retry_after = dict(raw_refusal.value.trailing_metadata() or ())["retry-after"]
    assert 1 <= int(retry_after) <= 20

    # Tokens: one greedy request (decoding alone, so every run of it is the same) uses `used` tokens,
    # prompt + completion; a key allowed that many a minute is let in while its bucket is not empty
    # and charged what it used: the first request empties the bucket, the second (let in on the
    # trickle refilled since) puts it a whole request in debt, and the third is refused.
    with two.swarm.client() as as_admin:
        finished = as_admin.generate("Once upon a time", max_tokens=24, temperature=0.0).finished
    used = finished.prompt_tokens + finished.completion_tokens
    tokens_key = two.create("tpm", tokens_per_minute=used)
    with two.client(two.a, tokens_key) as on_a, two.client(two.b, tokens_key) as on_b:
        assert generate(on_a, max_tokens=24) == finished.completion_tokens
        generate(on_b, max_tokens=24)
        refused = refusal(lambda: generate(on_a, max_tokens=24))
        assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"'tpm' is over its limit of {used} tokens per minute" in refused.details
        assert refusal(lambda: generate(on_b)).code is grpc.StatusCode.RESOURCE_EXHAUSTED

    # Over HTTP the same refusal is a 429 in OpenAI's shape, with retry-after.
    status, headers, body = http_post(two.http_b, "/v1/completions", {"prompt": "Hi", "max_tokens": 2}, key)
    assert status == 429, body
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(headers["Retry-After"]) <= 60


def test_a_key_limited_to_one_stream_gets_one_across_both_coordinators(make_swarm: MakeSwarm, slow_model: Path) -> None:
    two = start_two(make_swarm, model=slow_model)
    key = two.create("one-stream", max_streams=1)
    with two.client(two.a, key) as on_a, two.client(two.b, key) as on_b:
        stream = on_a.stream("Once upon a time", max_tokens=400, temperature=0.0)
        assert isinstance(next(stream), TextPiece)  # the stream is open and holds the key's slot
        refused = refusal(lambda: generate(on_b))
        assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "1 concurrent streams" in refused.details
        stream.close()  # cancels it: its slot is free again
        wait_until(lambda: _admitted(on_b), 15, "the slot freed by the closed stream")


def _admitted(client: SwarmClient) -> bool:
    try:
        generate(client, max_tokens=1)
    except SwarmCallError as exc:
        if exc.code is not grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        return False
    return True


def test_models_expiry_and_revocation_bite_on_both_coordinators_at_once(make_swarm: MakeSwarm) -> None:
    two = start_two(make_swarm)
    other_model = two.create("other-model", models=["some-other-model"])
    for address in (two.a, two.b):
        with two.client(address, other_model) as client:
            refused = refusal(lambda c=client: generate(c))
            assert refused.code is grpc.StatusCode.PERMISSION_DENIED
            assert f"may not use model {two.model!r}" in refused.details
    status, _, body = http_post(two.http_a, "/v1/completions", {"prompt": "Hi", "model": two.model}, other_model)
    assert status == 403 and two.model in body["error"]["message"]
    allowed = two.create("this-model", models=[two.model])
    with two.client(two.b, allowed) as client:
        assert generate(client) == 4
    # Batch lines too: each names an allowed model (its own or the job's), checked at submission.
    line = BatchLine(RawRequest(prompt="Hi", max_tokens=2), "a")
    with BatchClient(two.a, api_key=other_model) as batches:
        refused = refusal(lambda: batches.submit([line], model=two.model))
        assert refused.code is grpc.StatusCode.PERMISSION_DENIED and two.model in refused.details
    with BatchClient(two.b, api_key=allowed) as batches:
        assert refusal(lambda: batches.submit([line])).code is grpc.StatusCode.PERMISSION_DENIED  # names no model
        assert batches.submit([line], model=two.model).total == 1

    expires = (datetime.now(UTC) + timedelta(seconds=4)).isoformat(timespec="seconds")
    short_lived = two.create("short-lived", expires=expires)
    with two.client(two.a, short_lived) as on_a, two.client(two.b, short_lived) as on_b:
        assert generate(on_a) == 4
        wait_until(lambda: _refused_as_expired(on_b), 15, "the key's expiry")
        assert "expired" in refusal(lambda: generate(on_a)).details

    revoked = two.create("revoked")
    with two.client(two.a, revoked) as on_a, two.client(two.b, revoked) as on_b:
        assert generate(on_a) == 4 and generate(on_b) == 4
        two.admin(two.b).call("RevokeKey", pb.RevokeKeyRequest(name="revoked"))
        started = time.monotonic()
        for client in (on_a, on_b):  # at once: the very next call, on either coordinator
            refused = refusal(lambda c=client: generate(c))
            assert refused.code is grpc.StatusCode.UNAUTHENTICATED and "'revoked' was revoked" in refused.details
        assert time.monotonic() - started < 1.0
    status, _, body = http_post(two.http_b, "/v1/completions", {"prompt": "Hi"}, revoked)
    assert status == 401 and "revoked" in body["error"]["message"]


def _refused_as_expired(client: SwarmClient) -> bool:
    try:
        generate(client, max_tokens=1)
    except SwarmCallError as exc:
        return exc.code is grpc.StatusCode.UNAUTHENTICATED and "expired" in exc.details
    return False


def test_key_management_needs_an_admin_key_and_names_bad_fields(
    make_swarm: MakeSwarm, capsys: pytest.CaptureFixture[str]
) -> None:
    two = start_two(make_swarm)
    cli = ["--coordinator", two.b, "--api-key", ADMIN_KEY]
    assert main(["keys", "create", "team-a", "--models", f"{two.model},x", "--requests-per-minute", "5", *cli]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("sk-swarm-") and len(secret) > 40
    assert main(["keys", "create", "boss", "--admin", "--json", *cli]) == 0
    boss = json.loads(capsys.readouterr().out)["secret"]

    assert main(["keys", "list", "--json", *cli]) == 0
    listed = {k["name"]: k for k in json.loads(capsys.readouterr().out)}
    assert listed["team-a"]["models"] == [two.model, "x"] and listed["team-a"]["requests_per_minute"] == 5
    assert listed["boss"]["admin"] and not listed["team-a"]["admin"]
    assert secret not in json.dumps(listed)

    # Field-naming refusals, through the CLI as through the API.
    assert main(["keys", "create", "team-a", *cli]) == 2
    assert "ALREADY_EXISTS: name: a key named 'team-a' exists already" in capsys.readouterr().err
    assert main(["keys", "create", "late", "--expires", "someday", *cli]) == 2
    assert "INVALID_ARGUMENT: expires:" in capsys.readouterr().err
    assert main(["keys", "revoke", "nobody", *cli]) == 2
    assert "NOT_FOUND: name: no key named 'nobody'" in capsys.readouterr().err

    # Without a key, with a non-admin key, with the created admin key.
    for key, code in (("", "UNAUTHENTICATED"), (secret, "PERMISSION_DENIED")):
        with pytest.raises(grpc.RpcError) as refused:
            two.admin(two.a, key).call("ListKeys", pb.ListKeysRequest())
        assert refused.value.code().name == code
    assert len(two.admin(two.a, boss).call("ListKeys", pb.ListKeysRequest()).keys) == 2
    with two.client(two.a, secret) as client:
        assert refusal(client.status).code is grpc.StatusCode.PERMISSION_DENIED
    assert http_get(two.http_a, "/status", secret)[0] == 403
    assert http_get(two.http_a, "/metrics", secret)[0] == 403
    assert http_get(two.http_a, "/status", boss)[0] == 200

    assert main(["keys", "revoke", "team-a", "--coordinator", two.a, "--api-key", boss]) == 0
    assert main(["keys", "list", *cli]) == 0
    assert "team-a  REVOKED" in capsys.readouterr().out

    # The same over HTTP.
    assert http_post(two.http_b, "/admin/keys", {"name": "web"}, "wrong-key")[0] == 401
    assert http_post(two.http_b, "/admin/keys", {"name": "web"}, secret)[0] == 401  # revoked above
    web_key = http_post(two.http_b, "/admin/keys", {"name": "web", "max_streams": 2}, boss)
    assert web_key[0] == 201 and web_key[2]["key"]["max_streams"] == 2
    assert http_post(two.http_b, "/admin/keys", {"name": "plain"}, web_key[2]["secret"])[0] == 403
    status, _, body = http_post(two.http_a, "/admin/keys", {"name": "web"}, boss)
    assert status == 409 and body["error"].startswith("name: ")
    status, _, body = http_post(two.http_a, "/admin/keys", {"name": "x", "expires": "soon"}, boss)
    assert status == 400 and body["error"].startswith("expires: ")
    status, _, body = http_post(two.http_a, "/admin/keys", {"name": "x", "max_streams": "2"}, boss)
    assert status == 400 and body["error"].startswith("max_streams: ")
    assert _http("DELETE", two.http_a, "/admin/keys/nobody", boss, None)[0] == 404
    assert _http("DELETE", two.http_a, "/admin/keys/web", boss, None)[2]["key"]["revoked"] is True
    listed_http = http_get(two.http_a, "/admin/keys", ADMIN_KEY)[2]["keys"]
    assert {k["name"] for k in listed_http} == {"team-a", "boss", "web"}


def http_post(http: str, path: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, str], Any]:
    return _http("POST", http, path, key, json.dumps(body).encode())


def http_get(http: str, path: str, key: str) -> tuple[int, dict[str, str], Any]:
    return _http("GET", http, path, key, None)


def _http(method: str, http: str, path: str, key: str, data: bytes | None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        f"http://{http}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
            return answer.status, dict(answer.headers), json.loads(text) if text.startswith(("{", "[")) else text
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        return exc.code, dict(exc.headers), json.loads(text) if text.startswith(("{", "[")) else text


def test_a_coordinator_that_requires_no_key_manages_none(
    make_swarm: MakeSwarm, capsys: pytest.CaptureFixture[str]
) -> None:
    swarm: RunningSwarm = make_swarm(workers=0)
    assert main(["keys", "create", "team-a", "--coordinator", swarm.address]) == 2
    error = capsys.readouterr().err
    assert "FAILED_PRECONDITION" in error and "--api-key" in error
    with pytest.raises(grpc.RpcError) as refused:
        AdminCalls(swarm.address, "").call("ListKeys", pb.ListKeysRequest())
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
