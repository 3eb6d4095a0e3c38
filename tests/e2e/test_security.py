"""Security end to end: join tokens, client API keys on gRPC and HTTP, TLS everywhere, Redis passwords, size limits."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarm.cli.main import main
from swarm.client import AsyncSwarmClient, SwarmCallError, SwarmClient
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import REDIS_TIER, LocalSwarm, ManagedProcess, free_port, wait_until
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles
from swarm.shared.validation import RequestLimits
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(120)

MakeSwarm = Callable[..., RunningSwarm]


def log_of(swarm: RunningSwarm, name: str = "coordinator") -> str:
    path = swarm.processes.log_dir
    return (path / f"{name}.log").read_text() if path is not None else ""


def http_get(url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


# ---------------------------------------------------------------- join token


def test_workers_without_the_join_token_are_refused_and_logged(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0, coordinator_args=("--token", "join-secret"))
    with grpc.insecure_channel(swarm.address) as channel:
        registry = pb_grpc.RegistryStub(channel)
        for metadata in (bearer_metadata("wrong-secret"), ()):
            with pytest.raises(grpc.RpcError) as refused:
                registry.Join(pb.JoinRequest(info=pb.WorkerInfo(worker_id="w")), metadata=metadata, timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    wait_until(lambda: "refused a worker call from ipv4:127.0.0.1" in log_of(swarm), 10, "the refusal in the log")

    impostor = swarm.add_worker("--token", "wrong-secret", name="impostor")
    wait_until(lambda: not impostor.alive, 60, "the impostor worker to give up")
    assert impostor.process is not None and impostor.process.returncode == 2
    impostor.stopped_on_purpose = True  # its exit was the point: wait_for_workers must not take it for a failure
    assert "wrong or missing join token" in log_of(swarm, "impostor")
    assert "wrong-secret" not in log_of(swarm)

    swarm.add_worker("--token", "join-secret", name="member")
    swarm.wait_for_workers(1)


def test_the_worker_service_requires_the_join_token(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1, coordinator_args=("--token", "join-secret"), worker_args=("--token", "join-secret"))
    with swarm.client() as client:
        address = client.status().workers[0].info.address
    with grpc.insecure_channel(address) as channel:
        run = pb_grpc.WorkerStub(channel).Run
        request = pb.RunRequest(request_id="r1", prompt="hi", max_tokens=2)
        with pytest.raises(grpc.RpcError) as refused:
            list(run(request, metadata=bearer_metadata("wrong-secret"), timeout=10))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    wait_until(lambda: "refused a Run call" in log_of(swarm, "worker-0"), 10, "the worker to log the refusal")


# ---------------------------------------------------------------- API keys


@pytest.fixture
def keyed_swarm(make_swarm: MakeSwarm, tmp_path: Path) -> RunningSwarm:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text("# clients\nfile-key\n")
    return make_swarm(
        workers=1,
        coordinator_args=("--api-key", "flag-key", "--api-keys-file", str(keys_file)),
        client_options={"api_key": "flag-key"},
    )


@pytest.mark.parametrize("api_key", ["", "wrong-key"])
def test_clients_without_a_valid_api_key_are_refused_and_logged(keyed_swarm: RunningSwarm, api_key: str) -> None:
    with keyed_swarm.client(api_key=api_key, retries=0) as client:
        for call in (client.status, client.list_models, lambda: client.generate("Hi", max_tokens=2)):
            with pytest.raises(SwarmCallError) as refused:
                call()
            assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization: Bearer KEY" in refused.value.details
    wait_until(lambda: "refused a client call from ipv4:127.0.0.1" in log_of(keyed_swarm), 10, "the refusal logged")
    assert "wrong-key" not in log_of(keyed_swarm)


def test_a_valid_api_key_works_on_grpc_and_health_stays_open(keyed_swarm: RunningSwarm) -> None:
    for key in ("flag-key", "file-key"):
        with keyed_swarm.client(api_key=key) as client:
            completion = client.generate("Hello", max_tokens=3, temperature=0)
        assert completion.finished.completion_tokens > 0
    with grpc.insecure_channel(keyed_swarm.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_cli_passes_the_api_key_from_a_flag_or_the_environment(
    keyed_swarm: RunningSwarm, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["models", "--coordinator", keyed_swarm.address]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert main(["models", "--coordinator", keyed_swarm.address, "--api-key", "file-key"]) == 0
    assert "tiny (default): 1 workers up" in capsys.readouterr().out
    monkeypatch.setenv("SWARM_API_KEY", "flag-key")
    assert main(["status", "--coordinator", keyed_swarm.address, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["workers"]) == 1


def test_http_needs_a_key_except_health_and_openai_errors_take_openai_shape(keyed_swarm: RunningSwarm) -> None:
    base = f"http://{keyed_swarm.http}"
    assert http_get(f"{base}/healthz")[0] == 200
    for page in ("/", "/static/dashboard.js"):  # the dashboard's page and assets hold no data
        with urllib.request.urlopen(f"{base}{page}", timeout=10) as reply:
            assert reply.status == 200
    for guarded in ("/events", "/metrics", "/static/../status", "/static/%2E%2E/status", "/nowhere"):
        assert http_get(f"{base}{guarded}")[0] == 401, guarded
    status, body = http_get(f"{base}/status")
    assert status == 401 and "Bearer" in body["error"]
    assert http_get(f"{base}/status", {"Authorization": "Bearer wrong-key"})[0] == 401
    status, body = http_get(f"{base}/status", {"Authorization": "Bearer flag-key"})
    assert status == 200 and len(body["workers"]) == 1
    assert http_get(f"{base}/models", {"Cookie": "swarm_api_key=file-key"})[0] == 200
    status, body = http_get(f"{base}/v1/models")
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["code"] == "invalid_api_key"
    assert body["error"]["message"]


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    assert main(["certs", "init", "--out", str(out), "--hosts", "127.0.0.1"]) == 0
    return out


def tls_flags(certs: Path) -> tuple[str, ...]:
    return (
        "--tls-cert",
        str(certs / "node.pem"),
        "--tls-key",
        str(certs / "node-key.pem"),
        "--tls-ca",
        str(certs / "ca.pem"),
    )


def test_mutual_tls_end_to_end_and_plaintext_is_refused(make_swarm: MakeSwarm, certificates: Path) -> None:
    mutual = TlsFiles(certificates / "node.pem", certificates / "node-key.pem", certificates / "ca.pem")
    worker_metrics = f"127.0.0.1:{free_port()}"
    swarm = make_swarm(
        workers=1,
        coordinator_args=tls_flags(certificates),
        client_options={"tls": mutual},
        worker_args=(*tls_flags(certificates), "--metrics", worker_metrics),
    )
    with swarm.client() as client:
        completion = client.generate("Hello", max_tokens=3, temperature=0)
    assert completion.finished.completion_tokens > 0

    async def generate_async() -> int:
        async with AsyncSwarmClient(swarm.address, tls=mutual) as client:
            return (await client.generate("Hello", max_tokens=3, temperature=0)).finished.completion_tokens

    assert asyncio.run(generate_async()) > 0

    with SwarmClient(swarm.address, retries=0, timeout_s=5) as plaintext, pytest.raises(SwarmCallError) as refused:
        plaintext.status()
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    no_client_cert = TlsFiles(ca=certificates / "ca.pem")
    with (
        SwarmClient(swarm.address, tls=no_client_cert, retries=0, timeout_s=5) as anonymous,
        pytest.raises(SwarmCallError),
    ):
        anonymous.status()

    context = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    context.load_cert_chain(str(certificates / "node.pem"), str(certificates / "node-key.pem"))
    assert http_get(f"https://{swarm.http}/healthz", context=context)[0] == 200
    with urllib.request.urlopen(f"https://{worker_metrics}/metrics", timeout=10, context=context) as scrape:
        assert b"swarm_worker" in scrape.read()
    with pytest.raises(OSError):  # the TLS port hangs up on plaintext HTTP
        http_get(f"http://{swarm.http}/healthz")


# ---------------------------------------------------------------- Redis password


def test_redis_with_a_password_works_and_the_password_never_reaches_a_log(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "redis-pw-8d1f"
    processes = LocalSwarm(log_dir=tmp_path)
    try:
        url = processes.start_redis(tmp_path / "redis", password=password)
        address, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        swarm = RunningSwarm(processes, address, http, tiny_model, processes.start_coordinator(address, http))
        swarm.wait_for_coordinator()
        swarm.add_worker()
        swarm.wait_for_workers(1)
        with swarm.client() as client:
            assert client.generate("Hello", max_tokens=3, temperature=0).finished.completion_tokens > 0
        log = log_of(swarm)
        assert "Redis redis://:***@127.0.0.1" in log
        assert password not in log

        monkeypatch.setenv("SWARM_REDIS", url.replace(password, "not-the-password"))  # out of ps, unlike --redis
        assert main(["coordinator", "--listen", f"127.0.0.1:{free_port()}", "--http", ""]) == 2
        error = capsys.readouterr().err
        assert "cannot reach Redis at redis://:***@127.0.0.1" in error
        assert "not-the-password" not in error
    finally:
        processes.stop()


# ---------------------------------------------------------------- sizes


def test_oversized_requests_are_refused_before_they_are_parsed(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    with swarm.client(retries=0) as client:
        with pytest.raises(SwarmCallError) as too_long:
            client.generate("x" * 300_000, max_tokens=1)
        assert too_long.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(SwarmCallError) as too_big:
            client.generate("x" * 2_000_000, max_tokens=1)
        assert too_big.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in too_big.value.details
    request = urllib.request.Request(f"http://{swarm.http}/v1/completions", data=b"x" * 2_000_000, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    # The coordinator's own bound (not aiohttp's 1 MiB default) refused it before any handler parsed it; the
    # OpenAI routes answer that in OpenAI's shape, as a 400 naming the body.
    assert refused.value.code in (400, 413)
    assert f"Maximum request body size {RequestLimits().max_message_bytes} exceeded" in refused.value.read().decode()
    assert swarm.coordinator.alive


def test_a_pipeline_fetches_and_runs_its_stages_over_mutual_tls_with_a_token(
    make_swarm: MakeSwarm, certificates: Path, tmp_path: Path
) -> None:
    whole = write_tiny_llama(tmp_path / "four.gguf", seed=0, n_layer=4)
    stages_dir = tmp_path / "stages"
    split_model(whole, 2, stages_dir / "four-2")
    secured = (*tls_flags(certificates), "--token", "join-secret")
    swarm = make_swarm(
        workers=0,
        coordinator_args=("--stages-dir", str(stages_dir), *secured),
        client_options={
            "tls": TlsFiles(certificates / "node.pem", certificates / "node-key.pem", certificates / "ca.pem")
        },
    )
    worker_env = {"XDG_CACHE_HOME": str(tmp_path / "worker-cache")}  # nothing cached: both stages are downloaded
    last_port = free_port()
    for stage, wiring in ((1, ("--listen", f"127.0.0.1:{last_port}")), (0, ("--next-stage", f"127.0.0.1:{last_port}"))):
        swarm.processes.start_worker(
            swarm.address,
            Path(f"four-2:{stage}"),
            "--threads",
            "1",
            *secured,
            *wiring,
            name=f"stage-{stage}",
            env=worker_env,
        )
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        assert client.generate("Hello world", max_tokens=4, temperature=0.0).finished.completion_tokens > 0

    with grpc.insecure_channel(f"127.0.0.1:{last_port}") as plaintext:
        stream = pb_grpc.StageStub(plaintext).Forward(iter([pb.StageStep()]), timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            list(stream)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # a TLS-only port cannot be spoken to in plaintext


def test_rediss_with_a_private_ca_works(tiny_model: Path, tmp_path: Path, certificates: Path) -> None:
    port = free_port()
    processes = LocalSwarm(log_dir=tmp_path)
    redis_server = ManagedProcess(
        "redis",
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(certificates / "node.pem"),
            "--tls-key-file",
            str(certificates / "node-key.pem"),
            "--tls-ca-cert-file",
            str(certificates / "ca.pem"),
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        tmp_path / "redis.log",
        tier=REDIS_TIER,
    ).start()
    processes.processes.append(redis_server)
    try:
        processes.redis_url = (
            f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certificates / 'ca.pem'}"
            f"&ssl_certfile={certificates / 'node.pem'}&ssl_keyfile={certificates / 'node-key.pem'}"
        )
        address, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        swarm = RunningSwarm(processes, address, http, tiny_model, processes.start_coordinator(address, http))
        swarm.wait_for_coordinator()
        swarm.add_worker()
        swarm.wait_for_workers(1)
        with swarm.client() as client:
            assert client.generate("Hello", max_tokens=3, temperature=0).finished.completion_tokens > 0
    finally:
        processes.stop()
