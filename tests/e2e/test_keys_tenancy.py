"""Keys are tenants: a key sees, reads and cancels only its own batch jobs and requests; the dashboard follows."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import grpc
import pytest

from swarm.client import BatchClient, SwarmCallError
from swarm.client.usage_client import fetch_usage
from swarm.launch.local_swarm import wait_until
from swarm.shared.batch_types import BatchLine, BatchState
from swarm.shared.types import RawRequest
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm
from tests.e2e.test_coordinator_restart import MakeSwarm
from tests.e2e.test_keys import ADMIN_KEY, AdminCalls

pytestmark = pytest.mark.timeout(120)

PROMPT = "Once upon a time"


def lines(count: int, max_tokens: int) -> list[BatchLine]:
    return [BatchLine(RawRequest(prompt=f"{PROMPT} {i}", max_tokens=max_tokens), f"line-{i}") for i in range(count)]


def refused_code(call: Any) -> grpc.StatusCode:
    with pytest.raises(SwarmCallError) as refused:
        call()
    return refused.value.code


def generate_stream(address: str, key: str, request_id: str, resume_after: int) -> list[pb.GenerateResponse]:
    request = pb.GenerateRequest(
        prompt=PROMPT, max_tokens=8, temperature=0.0, request_id=request_id, resume_after_tokens=resume_after
    )
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.InferenceStub(channel)
        return list(stub.Generate(request, metadata=(("authorization", f"Bearer {key}"),), timeout=30))


def dashboard_snapshot(http: str, key: str, jobs: int, timeout_s: float = 20) -> dict[str, Any]:
    """The first snapshot the key's dashboard gets that shows `jobs` batch jobs (the sampler may lag a submit)."""
    request = urllib.request.Request(f"http://{http}/events", headers={"Cookie": f"swarm_api_key={key}"})
    deadline = time.monotonic() + timeout_s
    seen: dict[str, Any] = {}
    with urllib.request.urlopen(request, timeout=timeout_s) as events:
        for raw in events:
            line = raw.decode().strip()
            if line.startswith("data: "):
                seen = json.loads(line.removeprefix("data: "))
                if len(seen["batch_jobs"]) >= jobs or time.monotonic() > deadline:
                    return seen
    raise AssertionError(f"the event stream ended; the last snapshot: {seen}")


def swarm_with_keys(make_swarm: MakeSwarm, *names: str) -> tuple[RunningSwarm, AdminCalls, list[str]]:
    """A swarm with one worker behind an admin key, and a key created for each name (their secrets)."""
    swarm: RunningSwarm = make_swarm(
        workers=1, coordinator_args=("--api-key", ADMIN_KEY), client_options={"api_key": ADMIN_KEY}
    )
    admin = AdminCalls(swarm.address, ADMIN_KEY)
    return swarm, admin, [admin.call("CreateKey", pb.CreateKeyRequest(name=name)).secret for name in names]


def test_a_key_sees_reads_and_cancels_only_its_own_batch_jobs_and_requests(make_swarm: MakeSwarm) -> None:
    swarm, _, (alice, bob) = swarm_with_keys(make_swarm, "alice", "bob")

    with BatchClient(swarm.address, api_key=alice) as as_alice, BatchClient(swarm.address, api_key=bob) as as_bob:
        job = as_alice.submit(lines(200, 64))
        small = as_alice.submit(lines(1, 2))
        bobs = as_bob.submit(lines(1, 2))
        assert {j.job_id for j in as_alice.list()} == {job.job_id, small.job_id}
        assert [j.job_id for j in as_bob.list()] == [bobs.job_id]
        assert refused_code(lambda: as_bob.get(job.job_id)) is grpc.StatusCode.NOT_FOUND
        assert refused_code(lambda: list(as_bob.results(job.job_id, partial=True))) is grpc.StatusCode.NOT_FOUND
        assert refused_code(lambda: as_bob.cancel(job.job_id)) is grpc.StatusCode.NOT_FOUND
        assert as_alice.get(job.job_id).state is BatchState.RUNNING  # bob's cancel did nothing
        with BatchClient(swarm.address, api_key=ADMIN_KEY) as as_admin:  # an admin key sees every job
            assert {j.job_id for j in as_admin.list()} >= {job.job_id, small.job_id, bobs.job_id}
        assert as_alice.cancel(job.job_id).state is BatchState.CANCELLED

        # The dashboard shows bob his own job only, and no workers; an admin key everything.
        everything = dashboard_snapshot(swarm.http, ADMIN_KEY, jobs=3)
        mine = dashboard_snapshot(swarm.http, bob, jobs=1)
        assert [j["job_id"] for j in mine["batch_jobs"]] == [bobs.job_id]
        assert mine["workers"] == mine["models"] == mine["problems"] == []
        assert len(everything["workers"]) == 1 and len(everything["batch_jobs"]) == 3

    # A request id names the request of the key that sent it: bob cannot resume (attach to) alice's.
    first = generate_stream(swarm.address, alice, "alices-request", 0)
    assert first[-1].HasField("finished")
    with pytest.raises(grpc.RpcError) as refused:
        generate_stream(swarm.address, bob, "alices-request", 1)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    # The same id sent by bob from the start is a request of his own, not alice's.
    assert generate_stream(swarm.address, bob, "alices-request", 0)[-1].HasField("finished")

    # Usage: each key reads its own; another key's, or everyone's, needs an admin key.
    def usage_of(key: str, tenant: str = "") -> dict[str, int]:
        report = fetch_usage(swarm.address, tenant=tenant, api_key=key)
        return {row.tenant: row.tokens.completion for row in report.rows}

    wait_until(lambda: {"alice", "bob"} <= set(usage_of(ADMIN_KEY)), 20, "both keys' usage counted")
    assert set(usage_of(bob)) == {"bob"} and set(usage_of(alice)) == {"alice"}
    with pytest.raises(SwarmCallError) as refused_usage:
        usage_of(bob, tenant="alice")
    assert refused_usage.value.code is grpc.StatusCode.PERMISSION_DENIED

    def bobs_dashboard_usage() -> list[str]:
        return [t["tenant"] for t in dashboard_snapshot(swarm.http, bob, jobs=1).get("usage", {}).get("tenants", [])]

    wait_until(lambda: bobs_dashboard_usage() == ["bob"], 30, "bob's dashboard to show his usage, and only his")


def test_a_keys_batch_lines_are_accounted_under_its_name_and_stop_when_it_is_revoked(make_swarm: MakeSwarm) -> None:
    swarm, admin, (batcher, quitter) = swarm_with_keys(make_swarm, "batcher", "quitter")

    with BatchClient(swarm.address, api_key=batcher) as batches:
        job = batches.submit(lines(6, 12))
        wait_until(lambda: batches.get(job.job_id).state is BatchState.DONE, 60, "the batch job to finish")
        results = list(batches.results(job.job_id))
    assert len(results) == 6 and not any(r.error for r in results)

    # Usage, as `swarm usage` reads it: the job's tokens under its key's name, exactly; none under no key.
    by_tenant = fetch_usage(swarm.address, api_key=ADMIN_KEY).by_tenant()
    assert set(by_tenant) == {"batcher"}
    assert by_tenant["batcher"].prompt == sum(r.prompt_tokens for r in results)
    assert by_tenant["batcher"].completion == sum(r.completion_tokens for r in results)
    assert by_tenant["batcher"].requests == 6

    # A revoked key's job runs no more lines: those running end, the rest fail without running.
    with BatchClient(swarm.address, api_key=quitter) as batches:
        long_job = batches.submit(lines(200, 128))
        wait_until(lambda: batches.get(long_job.job_id).finished_lines >= 1, 60, "the job's first line")
        admin.call("RevokeKey", pb.RevokeKeyRequest(name="quitter"))
    with BatchClient(swarm.address, api_key=ADMIN_KEY) as as_admin:
        wait_until(lambda: as_admin.get(long_job.job_id).state is BatchState.DONE, 30, "the revoked key's job to end")
        ended = list(as_admin.results(long_job.job_id))
    refused = [r for r in ended if r.error]
    assert len(ended) == 200 and len(refused) > 100
    assert all(r.error == "UNAUTHENTICATED: API key 'quitter' was revoked" for r in refused)
