"""Request ids starting with 'batch-' belong to the batch runner: a client's Generate using one is refused by name."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from swarm.client import BatchClient, SwarmCallError
from swarm.shared.batch_types import BatchLine, BatchState
from swarm.shared.types import RawRequest
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(60)


def test_a_client_request_id_with_the_batch_prefix_is_invalid_argument_naming_it(
    make_swarm: Callable[..., RunningSwarm],
) -> None:
    swarm = make_swarm(workers=0)
    with swarm.client(retries=0) as client, pytest.raises(SwarmCallError) as caught:
        client.generate("Hello", max_tokens=2, request_id="batch-job1-0")
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details.startswith("request_id: ") and "'batch-'" in caught.value.details
    # A batch line's own id is its custom id, not a swarm request id: any name is fine there.
    with BatchClient(swarm.address) as batches:
        job = batches.submit([BatchLine(RawRequest(prompt="Hello", max_tokens=2), custom_id="batch-mine")])
    assert job.total == 1 and job.state is BatchState.RUNNING
