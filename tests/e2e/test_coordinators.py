"""Two active coordinators on one Redis: a stream whose coordinator is SIGKILLed continues through the other."""

from __future__ import annotations

import random
import re
from pathlib import Path

import grpc

from swarm.launch.local_swarm import free_port, wait_until
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm
from tests.e2e.test_coordinator_restart import MakeSwarm

PROMPT = "Once upon a time"
MAX_TOKENS = 160
REQUEST_ID = "two-coordinators-1"


def generate(address: str, resume_after_tokens: int = 0, request_id: str = REQUEST_ID) -> grpc.Future:
    """A raw Generate stream, as any gRPC client sends it: no retries, no failover of its own."""
    channel = grpc.insecure_channel(address)
    request = pb.GenerateRequest(
        prompt=PROMPT,
        max_tokens=MAX_TOKENS,
        temperature=0.0,
        request_id=request_id,
        resume_after_tokens=resume_after_tokens,
    )
    return pb_grpc.InferenceStub(channel).Generate(request, timeout=120)


def read(stream: grpc.Future, tokens: list[int], stop_after: int = 0) -> pb.Finished | None:
    """Appends the stream's tokens; returns its finish, or None once stop_after tokens arrived."""
    for message in stream:
        if message.HasField("piece"):
            tokens.extend(message.piece.token_ids)
            if stop_after and len(tokens) >= stop_after:
                return None
        else:
            return message.finished
    raise AssertionError(f"the stream ended after {len(tokens)} tokens without a finish")


def test_a_stream_whose_coordinator_is_sigkilled_continues_through_another_with_the_unfailed_tokens(
    make_swarm: MakeSwarm, slow_model: Path
) -> None:
    swarm: RunningSwarm = make_swarm(workers=0, model=slow_model)  # coordinator A
    b_address = f"127.0.0.1:{free_port()}"
    b = swarm.processes.start_coordinator(b_address, "", name="coordinator-b")
    # The workers heartbeat through B, which lives on; A dispatches to them through the shared registry.
    for name in ("w1", "w2"):
        swarm.processes.start_worker(
            b_address, slow_model, "--threads", "1", "--slots", "1", "--context", "1024", name=name
        )
    swarm.wait_for_workers(2)

    reference: list[int] = []
    assert read(generate(b_address, request_id="reference"), reference) is not None
    assert len(reference) == MAX_TOKENS

    kill_after = random.randint(10, 100)
    tokens: list[int] = []
    assert read(generate(swarm.address), tokens, stop_after=kill_after) is None
    swarm.coordinator.kill()
    # The client comes back through B with the same id and the count of tokens it has.
    finished = read(generate(b_address, resume_after_tokens=len(tokens)), tokens)
    assert finished is not None
    assert tokens == reference, f"killed after {kill_after} tokens: the text differs from an unfailed run"
    assert finished.completion_tokens == MAX_TOKENS

    log_path = b.log_path
    assert log_path is not None
    wait_until(lambda: REQUEST_ID in log_path.read_text(), 10, "B's log of the takeover")
    resumed_after = [int(n) for n in re.findall(rf"requeueing {REQUEST_ID} after (\d+) pieces", log_path.read_text())]
    assert resumed_after and resumed_after[0] > 0, "B ran the request again from its start"
