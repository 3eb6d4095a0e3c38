"""Measured stage times re-cut a plan through a real coordinator: offers and heartbeats over gRPC, plan in Redis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.planning.link_costs import head_layers
from swarm.coordinator.planning.plan_store import state_from_json
from swarm.coordinator.planning.planner import stage_bytes
from swarm.coordinator.planning.recut import RECUT_ROUNDS
from swarm.gguf_files.model_shape import ModelShape, model_shape
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
SLOTS, CONTEXT = 1, 256
MS = 1e-3


class PlannedNode:
    """A node as the coordinator sees a `swarm join --auto` worker: it offers, joins its part, heartbeats."""

    def __init__(self, stub: pb_grpc.RegistryStub, name: str, free_bytes: int) -> None:
        self.stub, self.name, self.address = stub, name, f"{name}.lan:7000"
        self.offer = pb.AssignRequest(
            node_id=name, address=self.address, free_bytes=free_bytes, speed=1e9, slots=SLOTS, context_length=CONTEXT
        )
        self.part = pb.AssignResponse()
        self.secret = ""

    def ask(self) -> pb.AssignResponse:
        self.part = self.stub.Assign(self.offer, timeout=10)
        return self.part

    def join(self) -> None:
        info = pb.WorkerInfo(
            worker_id=self.name,
            address=self.address,
            model=self.part.model,
            slots=SLOTS,
            context_length=CONTEXT,
            stage_index=self.part.stage_index,
            stage_count=self.part.stage_count,
            layer_start=self.part.layer_start,
            layer_end=self.part.layer_end,
        )
        self.secret = self.stub.Join(pb.JoinRequest(info=info), timeout=10).worker_secret

    def work(self, shape: ModelShape) -> float:
        """Its part's work per token in layers: the head counts on the last stage."""
        last = self.part.layer_end == shape.n_layers
        return self.part.layer_end - self.part.layer_start + (head_layers(shape) if last else 0.0)

    def heartbeat(self, shape: ModelShape, layer_ms: float, peer: str = "") -> pb.HeartbeatResponse:
        """Reports decoding at layer_ms per layer (its head too, if last) and, with a peer, a 1 ms link to it."""
        work = self.work(shape)
        links = [pb.LinkMeasurement(peer=peer, rtt_s=1 * MS, bytes_per_s=1e8)] if peer else []
        measured = pb.StageMeasurement(decode_seconds_per_token=work * layer_ms * MS, decode_tokens=64, links=links)
        request = pb.HeartbeatRequest(worker_id=self.name, worker_secret=self.secret, measured=measured)
        return self.stub.Heartbeat(request, timeout=10)


@pytest.fixture
def six_layers(tmp_path: Path) -> Path:
    return write_tiny_llama(tmp_path / "six.gguf", n_layer=6, n_embd=256, n_head=4, n_head_kv=2, n_ff=1024)


def test_a_stage_measured_half_as_fast_is_re_cut_once_after_sustained_rounds(
    make_swarm: MakeSwarm, six_layers: Path, redis_url: str, tmp_path: Path
) -> None:
    plan = ("--plan-model", str(six_layers), "--plan-model-name", "six", "--stages-dir", str(tmp_path / "stages"))
    swarm = make_swarm(workers=0, model=six_layers, coordinator_args=plan)
    shape = model_shape(six_layers, "six")
    kv = SLOTS * CONTEXT
    room = max(stage_bytes(shape, 0, 5, kv), stage_bytes(shape, 1, 6, kv))  # any stage of 5 layers, not all 6
    assert room < stage_bytes(shape, 0, 6, kv)
    with grpc.insecure_channel(swarm.address) as channel:
        stub = pb_grpc.RegistryStub(channel)
        a, b = PlannedNode(stub, "a", room), PlannedNode(stub, "b", room)
        assert not a.ask().model  # one node cannot hold the model: it waits
        b.ask()
        a.ask()
        fast, slow = sorted((a, b), key=lambda node: node.part.stage_index)  # the first stage feeds the last
        assert (fast.part.layer_start, slow.part.layer_end, slow.part.layer_start) == (0, 6, fast.part.layer_end)
        fast.join()
        slow.join()

        # The last stage runs at half speed. Rounds before the RECUT_ROUNDS-th move nothing (hysteresis).
        replies = []
        for _ in range(RECUT_ROUNDS):
            replies.append(fast.heartbeat(shape, 1.0, peer=slow.address))
            replies.append(slow.heartbeat(shape, 2.0))
        assert not any(r.reassign for r in replies[:-1])
        moved = [replies[-1].reassign, fast.heartbeat(shape, 1.0, peer=slow.address).reassign]
        assert all(moved), "both stages change their layers: both must take a new assignment"

        before = {node.name: node.work(shape) for node in (fast, slow)}
        fast.ask()
        slow.ask()
        assert fast.work(shape) > before[fast.name] and slow.work(shape) < before[slow.name]  # work moved off slow
        layout = sorted((node.part.layer_start, node.part.layer_end) for node in (fast, slow))
        assert layout[0][0] == 0 and layout[0][1] == layout[1][0] and layout[1][1] == 6

    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        saved = client.get(keys.plan_key("six"))
    assert saved is not None
    stored = state_from_json(str(saved)).plan
    assert stored is not None and [(s.layer_start, s.layer_end) for s in stored.pipelines[0]] == layout
