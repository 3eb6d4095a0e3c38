"""Request tracing end to end: a real swarm exports its spans over OTLP/gRPC to a receiver in the test."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from swarm.bench.span_receiver import SpanReceiver
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import free_port, wait_until
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]

COORDINATOR_SPANS = {
    "coordinator.Generate",
    "redis.enqueue",
    "coordinator.queued",
    "coordinator.dispatch",
    "redis.save_first_piece",
}
WORKER_SPANS = {"worker.Run", "worker.wait_for_slot", "worker.prefill_to_first_token"}


@pytest.fixture
def receiver() -> Iterator[SpanReceiver]:
    collector = SpanReceiver()
    yield collector
    collector.close()


def test_one_generate_is_one_trace_across_coordinator_and_worker(receiver: SpanReceiver, make_swarm: MakeSwarm) -> None:
    # receiver first: it outlives the swarm, whose processes send their last spans as they stop.
    endpoint = ("--otlp-endpoint", receiver.endpoint)
    swarm = make_swarm(workers=1, coordinator_args=endpoint, worker_args=endpoint)
    caller = TracerProvider().get_tracer("test")  # the client program's own tracing: recording, not exported
    with caller.start_as_current_span("client.request") as root, swarm.client() as client:
        client.generate("Once upon a time", max_tokens=4, temperature=0.0)
    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")

    wanted = COORDINATOR_SPANS | WORKER_SPANS
    wait_until(lambda: wanted <= receiver.spans(trace_id).keys(), 20, f"spans {sorted(wanted)} in the client's trace")
    spans = receiver.spans(trace_id)
    assert {spans[n].service for n in COORDINATOR_SPANS} == {"swarm-coordinator"}
    assert {spans[n].service for n in WORKER_SPANS} == {"swarm-worker"}

    def parent(name: str) -> str:
        return next(n for n, s in spans.items() if s.span_id == spans[name].parent_id)

    assert spans["coordinator.Generate"].parent_id == root_id  # the client's traceparent went along
    for child in ("redis.enqueue", "coordinator.queued", "coordinator.dispatch"):
        assert parent(child) == "coordinator.Generate", child
    assert parent("redis.save_first_piece") == "coordinator.dispatch"
    assert parent("worker.Run") == "coordinator.dispatch"  # carried in the relayed RunRequest
    assert parent("worker.wait_for_slot") == "worker.Run"  # carried into the engine thread
    assert parent("worker.prefill_to_first_token") == "worker.Run"
    assert spans["worker.wait_for_slot"].end_ns <= spans["worker.prefill_to_first_token"].end_ns

    # The OpenAI HTTP API joins its caller's trace from the traceparent header, down to the worker.
    http_trace = "0af7651916cd43dd8448eb211c80319c"
    request = urllib.request.Request(
        f"http://{swarm.http}/v1/completions",
        json.dumps({"prompt": "Once upon a time", "max_tokens": 2, "temperature": 0}).encode(),
        {"Content-Type": "application/json", "traceparent": f"00-{http_trace}-b7ad6b7169203331-01"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    http_span = "coordinator.HTTP POST /v1/completions"
    wait_until(lambda: {http_span, "worker.Run"} <= receiver.spans(http_trace).keys(), 20, "the HTTP request's spans")
    assert receiver.spans(http_trace)[http_span].parent_id == "b7ad6b7169203331"


def test_a_collector_that_is_down_fails_no_request_and_holds_up_no_stop(make_swarm: MakeSwarm) -> None:
    endpoint = ("--otlp-endpoint", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    swarm = make_swarm(workers=1, coordinator_args=endpoint, worker_args=endpoint)
    with swarm.client() as client:
        assert client.generate("Once upon a time", max_tokens=2, temperature=0.0).finished.completion_tokens == 2
    started = time.monotonic()
    assert swarm.coordinator.stop(timeout_s=10) == 0
    assert time.monotonic() - started < 8


def test_a_pipeline_request_s_trace_reaches_every_later_stage(
    receiver: SpanReceiver, make_swarm: MakeSwarm, tmp_path: Path
) -> None:
    whole = write_tiny_llama(tmp_path / "six.gguf", seed=0, n_layer=6)
    files = [tmp_path / "split" / s.file for s in split_model(whole, 3, tmp_path / "split").stages]
    endpoint = ("--otlp-endpoint", receiver.endpoint)
    swarm = make_swarm(workers=0, model=whole, coordinator_args=endpoint)
    swarm.processes.start_pipeline(swarm.address, files, "--threads", "1", "--slots", "2", *endpoint)
    swarm.wait_for_workers(1)
    caller = TracerProvider().get_tracer("test")
    with caller.start_as_current_span("client.request") as root, swarm.client() as client:
        client.generate("Once upon a time", max_tokens=4, temperature=0.0)
    trace_id = format(root.get_span_context().trace_id, "032x")

    def stage_spans() -> list[str]:
        return [s.attributes.get("stage", "") for s in receiver.all_spans(trace_id) if s.name == "stage.first_step"]

    def arrived() -> bool:  # each process exports on its own schedule
        return sorted(stage_spans()) == ["last", "middle"] and "worker.Run" in receiver.spans(trace_id)

    wait_until(arrived, 20, "a first-step span from stages 2 and 3, and the first stage's worker.Run")
    spans = receiver.spans(trace_id)
    for span in receiver.all_spans(trace_id):
        if span.name == "stage.first_step":  # the first stage's request span, carried in SessionOpen
            assert span.parent_id == spans["worker.Run"].span_id
