"""A worker's Relay stream: many runs on one stream, a message per step for all of them, cancels and refusals."""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from swarm.launch.local_swarm import wait_until
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]

pytestmark = pytest.mark.timeout(90)


class RelayCall:
    """A raw Relay stream to a worker, as a coordinator holds it: commands in, batches out."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._commands: queue.Queue[pb.RelayCommand | None] = queue.Queue()
        self.batches: Iterator[pb.RelayBatch] = pb_grpc.WorkerStub(self._channel).Relay(self._outgoing(), timeout=60)

    def _outgoing(self) -> Iterator[pb.RelayCommand]:
        while (command := self._commands.get()) is not None:
            yield command

    def run(self, request_id: str, max_tokens: int, piece_interval_ms: int = 0) -> None:
        sampling = pb.SamplingParams(top_p=1.0)
        request = pb.RunRequest(
            request_id=request_id,
            prompt="Once upon a time",
            max_tokens=max_tokens,
            sampling=sampling,
            piece_interval_ms=piece_interval_ms,
        )
        self._commands.put(pb.RelayCommand(run=request))

    def cancel(self, request_id: str) -> None:
        self._commands.put(pb.RelayCommand(cancel_request_id=request_id))

    def close(self) -> None:
        self._commands.put(None)
        self._channel.close()


def worker_address(swarm: RunningSwarm) -> str:
    with swarm.client() as client:
        return client.status().workers[0].info.address


def test_runs_on_one_stream_come_back_together_a_message_per_step(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)  # 4 slots
    relay = RelayCall(worker_address(swarm))
    ids = [f"together-{i}" for i in range(4)]
    for request_id in ids:
        relay.run(request_id, max_tokens=48)
    tokens: Counter[str] = Counter()
    finished: dict[str, pb.Finished] = {}
    messages = events = 0
    for batch in relay.batches:
        messages += 1
        assert not batch.ended, f"a run was refused or broken: {batch.ended}"
        for event in batch.events:
            events += 1
            if event.HasField("piece"):
                assert event.request_id not in finished, "a piece after its request's finish"
                tokens[event.request_id] += len(event.piece.token_ids)
            else:
                finished[event.request_id] = event.finished
        if len(finished) == len(ids):
            break
    relay.close()
    assert sorted(finished) == ids
    assert all(tokens[i] == finished[i].completion_tokens > 0 for i in ids), (tokens, finished)
    # Four sequences decode in the same steps: their tokens share messages.
    assert messages < events * 0.75, f"{messages} messages for {events} events: not one message per step"


def test_a_whole_answer_run_sends_its_pieces_in_bunches_beside_a_streamed_one(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    relay = RelayCall(worker_address(swarm))
    relay.run("streamed", max_tokens=120)
    relay.run("whole", max_tokens=120, piece_interval_ms=400)
    messages: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    finished: dict[str, pb.Finished] = {}
    started = time.monotonic()
    for batch in relay.batches:
        assert not batch.ended, f"a run was refused or broken: {batch.ended}"
        for event in batch.events:
            if event.HasField("piece"):
                messages[event.request_id] += 1
                tokens[event.request_id] += len(event.piece.token_ids)
            else:
                finished[event.request_id] = event.finished
        if len(finished) == 2:
            break
    elapsed = time.monotonic() - started
    relay.close()
    assert all(tokens[i] == finished[i].completion_tokens > 0 for i in ("streamed", "whole")), (tokens, finished)
    # The first piece at once, then one message per 0.4 s at most, and the rest with the Finished.
    assert messages["whole"] <= 2 + elapsed / 0.4, f"{messages['whole']} messages in {elapsed:.1f} s: not held"
    assert messages["whole"] < messages["streamed"] / 2, messages


def test_a_cancel_frees_the_slot_and_a_full_worker_refuses_only_that_run(
    make_swarm: MakeSwarm, slow_model: Path
) -> None:
    # The slow model: its 900 tokens take seconds, so the cancel lands mid-run even on a loaded machine.
    swarm = make_swarm(workers=0, model=slow_model)
    swarm.add_worker("--slots", "1", "--context", "1024")
    swarm.wait_for_workers(1)
    relay = RelayCall(worker_address(swarm))
    relay.run("first", max_tokens=900)
    relay.run("refused", max_tokens=4)
    ended: dict[str, pb.RunEnded] = {}
    finished: dict[str, pb.Finished] = {}
    for batch in relay.batches:
        for end in batch.ended:
            ended[end.request_id] = end
            if end.request_id == "refused":
                relay.cancel("first")
                relay.run("after-cancel", max_tokens=4)
        for event in batch.events:
            if event.HasField("finished"):
                finished[event.request_id] = event.finished
        if "after-cancel" in finished or "after-cancel" in ended:
            break
    relay.close()
    assert ended["refused"].code == "RESOURCE_EXHAUSTED", ended
    assert "after-cancel" in finished, f"the cancelled run kept the only slot: {ended}"
    assert "first" not in finished and "first" not in ended, "a cancelled run still reported its end"


def test_a_closed_stream_frees_the_slots_of_its_runs(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    swarm.add_worker("--slots", "1")
    swarm.wait_for_workers(1)
    address = worker_address(swarm)
    first = RelayCall(address)
    first.run("left-behind", max_tokens=400)
    assert next(first.batches).events, "the run never started"
    first.close()

    def a_new_stream_gets_the_slot() -> bool:
        relay = RelayCall(address)
        relay.run("next", max_tokens=2)
        try:
            for batch in relay.batches:
                if batch.ended:
                    return False
                if any(event.HasField("finished") for event in batch.events):
                    return True
            return False
        finally:
            relay.close()

    wait_until(a_new_stream_gets_the_slot, 20, "the slot of a run whose stream closed")


def test_a_leaving_worker_ends_an_idle_stream_itself_rather_than_having_it_cancelled(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    relay = RelayCall(worker_address(swarm))
    relay.run("before-leaving", max_tokens=2)
    for batch in relay.batches:
        if any(event.HasField("finished") for event in batch.events):
            break
    worker = swarm.processes.processes[-1]
    worker.terminate()
    # The stream ends cleanly (its server did not wait out its grace period and cancel it) while the
    # coordinator's side of it is still open.
    assert list(relay.batches) == []
    assert worker.process is not None and worker.process.wait(30) == 0
    relay.close()
