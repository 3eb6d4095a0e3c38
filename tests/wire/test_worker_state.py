"""A worker's state crosses the wire as an enum, with the text kept for tools and older peers."""

from __future__ import annotations

import pytest

from swarm.shared.types import WorkerId, WorkerInfo, WorkerState
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import status_from_wire, worker_info_to_wire, worker_state_to_wire


def status(*workers: pb.WorkerStatus) -> pb.GetStatusResponse:
    return pb.GetStatusResponse(workers=list(workers), queue_depth=0, default_model="tiny")


INFO = worker_info_to_wire(WorkerInfo(WorkerId("w"), "127.0.0.1:7000", "tiny", 512, 4, 1))


@pytest.mark.parametrize("state", list(WorkerState))
def test_every_state_survives_the_wire(state: WorkerState) -> None:
    sent = pb.WorkerStatus(info=INFO, state=state.value, worker_state=worker_state_to_wire(state))
    (view,) = status_from_wire(status(pb.WorkerStatus.FromString(sent.SerializeToString()))).workers
    assert view.state is state


@pytest.mark.parametrize(
    ("text", "state"), [("up", WorkerState.UP), ("draining", WorkerState.DRAINING), ("x", WorkerState.DOWN)]
)
def test_a_coordinator_that_sends_only_the_text_is_understood(text: str, state: WorkerState) -> None:
    (view,) = status_from_wire(status(pb.WorkerStatus(info=INFO, state=text))).workers
    assert view.state is state
