"""A revoked key's open streams end on every coordinator within seconds, and free their workers' slots."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from swarm.client import SwarmCallError
from swarm.launch.local_swarm import wait_until
from swarm.shared.types import GenerationEvent, TextPiece
from swarm.wire import swarm_pb2 as pb
from tests.e2e.test_coordinator_restart import MakeSwarm
from tests.e2e.test_keys import TwoCoordinators, start_two

pytestmark = pytest.mark.timeout(120)

# Gemma counts on and on (a synthetic model decodes hundreds of tokens a second); LONG tokens take it
# about 20 s here on one thread, 4 s on a CPU four times as fast: longer than every stream is let live.
PROMPT = "Count from 1 to 1000: 1, 2, 3, 4, 5,"
LONG = 450
ENDS_WITHIN_S = 5.0  # the watch checks every second; the rest is slack for a loaded machine


def grpc_stream(two: TwoCoordinators, address: str, key: str) -> Callable[[], str]:
    """Opens a long stream and waits for its first piece; the returned call reads the rest: how it ended."""
    client = two.client(address, key)
    events: Iterator[GenerationEvent] = client.stream(PROMPT, max_tokens=LONG, temperature=0.0)
    assert isinstance(next(events), TextPiece)

    def rest() -> str:
        try:
            with client:
                last = list(events)[-1]
        except SwarmCallError as exc:
            return f"{exc.code.name}: {exc.details}"
        return f"finished: {last}"

    return rest


def http_stream(http: str, key: str) -> Callable[[], str]:
    """The same over the OpenAI API: the rest of the stream is read to its end, its last data line kept."""
    body = json.dumps({"prompt": PROMPT, "max_tokens": LONG, "temperature": 0.0, "stream": True}).encode()
    request = urllib.request.Request(
        f"http://{http}/v1/completions",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    answer = urllib.request.urlopen(request, timeout=60)
    assert next(line for line in answer if line.startswith(b"data: ")), "no first chunk"

    def rest() -> str:
        with answer:
            lines = [line for line in (raw.decode().strip() for raw in answer) if line.startswith("data: ")]
        return lines[-1].removeprefix("data: ") if lines else "nothing"

    return rest


def slots_busy(two: TwoCoordinators) -> int:
    """The worker's busy slots, as its last heartbeat said."""
    with two.swarm.client(retries=0) as client:
        return sum(w.load.slots_busy for w in client.status().workers if w.up)


def test_revoking_a_key_ends_its_open_streams_on_both_coordinators_and_frees_their_slots(
    make_swarm: MakeSwarm, gemma_model: Path
) -> None:
    two = start_two(make_swarm, model=gemma_model)
    key = two.create("cut")
    # A long stream through each coordinator (and one over HTTP), each already generating.
    streams = [grpc_stream(two, two.a, key), grpc_stream(two, two.b, key), http_stream(two.http_b, key)]
    wait_until(lambda: slots_busy(two) == len(streams), 10, "the worker to report the streams' slots busy")

    with ThreadPoolExecutor(len(streams)) as pool:
        ends: list[Future[str]] = [pool.submit(rest) for rest in streams]
        revoked_at = time.monotonic()
        two.admin(two.a).call("RevokeKey", pb.RevokeKeyRequest(name="cut"))
        done, _ = wait(ends, timeout=ENDS_WITHIN_S)
        took = time.monotonic() - revoked_at
        assert len(done) == len(ends), f"{len(ends) - len(done)} streams still open {took:.1f} s after the revoke"

    on_a, on_b, over_http = (end.result() for end in ends)
    assert on_a == on_b == "UNAUTHENTICATED: API key 'cut' was revoked"
    error = json.loads(over_http)["error"]
    assert error["message"] == "API key 'cut' was revoked" and error["code"] == "invalid_api_key"
    # Their runs were cancelled, not left to generate their hundreds of tokens: the worker is idle again.
    wait_until(lambda: slots_busy(two) == 0, 15, "the worker's slots to be freed")
