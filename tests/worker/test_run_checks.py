"""A worker checks each Run itself: the join token lets a caller in, not past the ranges every request keeps."""

from __future__ import annotations

import math
from collections.abc import Callable

import grpc
import pytest

from swarm.shared.auth import bearer_metadata
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]

pytestmark = pytest.mark.timeout(60)

TOKEN = "run-checks-token-7d2e"
UINT32 = 2**32 - 1


def run(address: str, request: pb.RunRequest) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(address) as channel:
        try:
            replies = list(pb_grpc.WorkerStub(channel).Run(request, metadata=bearer_metadata(TOKEN), timeout=20))
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
    assert replies[-1].HasField("finished")
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize(
    ("field", "request_"),
    [
        ("temperature", pb.RunRequest(prompt="Hi", max_tokens=2, sampling=pb.SamplingParams(temperature=math.nan))),
        ("temperature", pb.RunRequest(prompt="Hi", max_tokens=2, sampling=pb.SamplingParams(temperature=-1.0))),
        ("top_p", pb.RunRequest(prompt="Hi", max_tokens=2, sampling=pb.SamplingParams(top_p=math.inf))),
        ("min_p", pb.RunRequest(prompt="Hi", max_tokens=2, sampling=pb.SamplingParams(top_p=1.0, min_p=-0.5))),
        ("max_tokens", pb.RunRequest(prompt="Hi", max_tokens=UINT32, sampling=pb.SamplingParams(top_p=1.0))),
        ("max_tokens", pb.RunRequest(prompt="Hi", max_tokens=0, sampling=pb.SamplingParams(top_p=1.0))),
    ],
)
def test_a_run_out_of_range_is_invalid_argument_even_with_the_join_token(
    make_swarm: MakeSwarm, field: str, request_: pb.RunRequest
) -> None:
    swarm = make_swarm(workers=1, coordinator_args=("--token", TOKEN), worker_args=("--token", TOKEN))
    with swarm.client() as client:
        worker = client.status().workers[0].info.address
    request_.request_id = "run-check"
    code, details = run(worker, request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith(field), details
    good = pb.RunRequest(request_id="run-ok", prompt="Hi", max_tokens=2, sampling=pb.SamplingParams(top_p=1.0))
    assert run(worker, good) == (grpc.StatusCode.OK, "")
