"""Request ids from outside, with a stock gRPC client: each API key's own, one request per id, resumes never repeat.

Real coordinator, Redis and llama.cpp workers; the client is a bare grpc channel with the
swarm.wire stubs, as any tool would be, so nothing of swarm's own client helps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import redis

from swarm.launch.local_swarm import wait_until
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
pytestmark = pytest.mark.timeout(240)
# Client A's request: seconds long on the slow model, so it is still running (and kept) while others probe its id.
LONG = 600


def generate(
    swarm: RunningSwarm, key: str, prompt: str, request_id: str, max_tokens: int, resume_after_tokens: int = 0
) -> Iterator[pb.GenerateResponse]:
    channel = grpc.insecure_channel(swarm.address)
    request = pb.GenerateRequest(
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=0.0,
        request_id=request_id,
        resume_after_tokens=resume_after_tokens,
    )
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    try:
        yield from pb_grpc.InferenceStub(channel).Generate(request, metadata=metadata, timeout=120)
    finally:
        channel.close()


def tokens_of(responses: Iterator[pb.GenerateResponse]) -> list[int]:
    return [t for r in responses if r.HasField("piece") for t in r.piece.token_ids]


def refusal(responses: Iterator[pb.GenerateResponse]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        list(responses)
    return caught.value


def test_a_request_id_belongs_to_the_api_key_and_the_request_that_created_it(
    make_swarm: MakeSwarm, slow_model: Path, redis_url: str
) -> None:
    swarm = make_swarm(
        workers=0,
        model=slow_model,
        coordinator_args=("--api-key", "key-a", "--api-key", "key-b"),
        client_options={"api_key": "key-a"},
    )
    # One slot: every run decodes alone, so greedy text is the same in each.
    swarm.add_worker("--slots", "1", "--context", "1024", name="w")
    swarm.wait_for_workers(1)
    prompt_a, prompt_b = "The secret plan of client A is", "Client B asks about the weather"
    reference_b = tokens_of(generate(swarm, "key-b", prompt_b, "reference-b", 16))

    owner = generate(swarm, "key-a", prompt_a, "mine", LONG)
    first = next(owner)
    assert first.HasField("piece")
    # Resuming A's id under B's key finds nothing: B cannot read A's text, nor learn that the id exists.
    error = refusal(generate(swarm, "key-b", prompt_a, "mine", LONG, resume_after_tokens=1))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "request_id" in (error.details() or "")
    with ThreadPoolExecutor(1) as pool:
        # Client B, with its own key and prompt, sends A's id while A's request runs: it gets its own completion.
        other_client = pool.submit(lambda: tokens_of(generate(swarm, "key-b", prompt_b, "mine", 16)))
        # A's id with other fields under A's own key names another request: refused, naming the field.
        error = refusal(generate(swarm, "key-a", prompt_b, "mine", LONG))
        assert error.code() is grpc.StatusCode.ALREADY_EXISTS
        assert (error.details() or "").startswith("request_id: 'mine'")
        # A retry of A's own request attaches to it (the shipped client relies on that).
        skip = len(first.piece.token_ids)
        retried = tokens_of(generate(swarm, "key-a", prompt_a, "mine", LONG, resume_after_tokens=skip))
        assert retried == tokens_of(owner)
        assert other_client.result(timeout=120) == reference_b

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        stored = " ".join(client.keys("*"))
    finally:
        client.close()
    assert "key-a" not in stored and "key-b" not in stored, "an API key reached Redis"


def test_a_retry_after_the_only_worker_died_continues_after_the_tokens_received(
    make_swarm: MakeSwarm, slow_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=slow_model, coordinator_args=("--no-worker-wait", "2"))
    first_worker = swarm.add_worker("--slots", "1", "--context", "1024", name="first")
    swarm.wait_for_workers(1)
    prompt, max_tokens = "Once upon a time", 150
    reference = tokens_of(generate(swarm, "", prompt, "reference", max_tokens))
    assert len(reference) == max_tokens

    error = refusal(generate(swarm, "", prompt, "unknown", max_tokens, resume_after_tokens=1000))
    assert error.code() is grpc.StatusCode.NOT_FOUND  # not silently run from the start
    assert "request_id: no request 'unknown'" in (error.details() or "")

    received: list[int] = []
    with pytest.raises(grpc.RpcError) as caught:
        for response in generate(swarm, "", prompt, "resumed", max_tokens):
            received.extend(response.piece.token_ids)
            if len(received) >= 31 and first_worker.alive:
                first_worker.kill()  # the only worker: the request fails once no other comes
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE, caught.value.details()
    assert 31 <= len(received) < max_tokens
    assert received == reference[: len(received)]

    error = refusal(generate(swarm, "", prompt, "resumed", max_tokens, resume_after_tokens=10_000))
    assert error.code() is grpc.StatusCode.OUT_OF_RANGE
    assert "resume_after_tokens: 10000" in (error.details() or "")

    swarm.add_worker("--slots", "1", "--context", "1024", name="second")
    wait_until(lambda: len(swarm.up_workers()) == 1, 60, "the second worker up")
    rest = tokens_of(generate(swarm, "", prompt, "resumed", max_tokens, resume_after_tokens=len(received)))
    assert rest[:1] == reference[len(received) : len(received) + 1]  # the token after the last one received
    assert [*received, *rest] == reference  # nothing repeated, nothing lost
