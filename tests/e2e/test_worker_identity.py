"""Worker identity from outside: a real coordinator and worker, a stock gRPC client holding the join token.

A second joiner cannot take a live worker's id (not even its default HOSTNAME-PORT one), only the
worker that joined can heartbeat or leave under it, and an id is free again once its worker died
and fell silent for the heartbeat TTL.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from swarm.launch.local_swarm import free_port, wait_until
from swarm.shared.auth import bearer_metadata
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(120)

MakeSwarm = Callable[..., RunningSwarm]
TOKEN = "join-secret"
WRONG_SECRET = "not-the-workers-secret"


def workers(swarm: RunningSwarm) -> dict[str, tuple[str, bool]]:
    """worker id -> (address, up), as the coordinator reports them."""
    with swarm.client(retries=0) as client:
        return {w.info.worker_id: (w.info.address, w.up) for w in client.status().workers}


def impostor(worker_id: str) -> pb.WorkerInfo:
    return pb.WorkerInfo(
        worker_id=worker_id, address=f"127.0.0.1:{free_port()}", model="tiny", context_length=512, slots=4, threads=1
    )


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


def test_a_live_workers_id_cannot_be_taken_nor_its_heartbeats_forged_and_frees_once_it_died(
    make_swarm: MakeSwarm,
) -> None:
    swarm = make_swarm(workers=1, coordinator_args=("--token", TOKEN), worker_args=("--token", TOKEN))
    ((worker_id, (address, _)),) = workers(swarm).items()  # its default id, HOSTNAME-PORT
    token = bearer_metadata(TOKEN)
    with grpc.insecure_channel(swarm.address) as channel:
        registry = pb_grpc.RegistryStub(channel)

        taken = refusal(lambda: registry.Join(pb.JoinRequest(info=impostor(worker_id)), metadata=token, timeout=10))
        assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
        assert f"worker_id: {worker_id!r}" in (taken.details() or "")

        forged = {
            "a heartbeat with a wrong secret": lambda: registry.Heartbeat(
                pb.HeartbeatRequest(worker_id=worker_id, worker_secret=WRONG_SECRET), metadata=token, timeout=10
            ),
            "a heartbeat without a secret": lambda: registry.Heartbeat(
                pb.HeartbeatRequest(worker_id=worker_id), metadata=token, timeout=10
            ),
            "a leave with a wrong secret": lambda: registry.Leave(
                pb.LeaveRequest(worker_id=worker_id, worker_secret=WRONG_SECRET), metadata=token, timeout=10
            ),
        }
        for what, call in forged.items():
            refused = refusal(call)
            assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, what
            assert (refused.details() or "").startswith("worker_secret:"), what

        assert workers(swarm) == {worker_id: (address, True)}  # still the real worker, still up
        with swarm.client() as client:
            assert client.generate("Hello", max_tokens=4, temperature=0).finished.completion_tokens == 4
        (real,) = (p for p in swarm.processes.processes if p.name == "worker-0")
        assert real.alive
        assert swarm.processes.log_dir is not None
        log = (swarm.processes.log_dir / "coordinator.log").read_text()
        assert f"refused a heartbeat for worker {worker_id}: wrong or missing worker secret" in log
        assert WRONG_SECRET not in log

        real.kill()
        wait_until(lambda: not workers(swarm)[worker_id][1], 30, "the killed worker's heartbeat to expire")
        successor = impostor(worker_id)
        joined = registry.Join(pb.JoinRequest(info=successor), metadata=token, timeout=10)
        assert joined.worker_id == worker_id and joined.worker_secret
        beat = registry.Heartbeat(
            pb.HeartbeatRequest(worker_id=worker_id, worker_secret=joined.worker_secret), metadata=token, timeout=10
        )
        assert not beat.rejoin
        assert workers(swarm) == {worker_id: (successor.address, True)}
