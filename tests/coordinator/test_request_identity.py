"""Request ids in-process on a real Redis: each API key's own, one request per id, resumes that never repeat."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.request_identity import client_request_id, owner_of_key, request_fingerprint, scoped_request_id
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import TextPiece
from tests.coordinator.core_harness import (
    FakeWorker,
    collect,
    core_config,
    expected_tokens,
    request,
    run,
    running_core,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


def test_the_same_id_under_two_api_keys_names_two_requests(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w")
        async with running_core(redis_url, [worker], core_config(api_keys=("key-a", "key-b"))) as core:
            await collect(core.service.generate(request("shared", max_tokens=3), "key-a"))
            other = replace(request("shared", max_tokens=5), prompt="another prompt")
            tokens, _, _ = await collect(core.service.generate(other, "key-b"))
            assert tokens == expected_tokens(5)  # its own request, run for it
            assert [r.prompt for r in worker.runs] == ["hello there", "another prompt"]
            assert [r.request_id for r in worker.runs] == [
                scoped_request_id(owner_of_key("key-a"), "shared"),
                scoped_request_id(owner_of_key("key-b"), "shared"),
            ]

    run(scenario)


def test_another_key_cannot_resume_a_running_request(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=2)
        async with running_core(redis_url, [worker], core_config(api_keys=("key-a", "key-b"))) as core:
            owner = asyncio.create_task(collect(core.service.generate(request("r"), "key-a")))
            await wait_for(lambda: len(worker.runs) == 1, "key-a's request running")
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(request("r", resume_after_tokens=1), "key-b"))
            assert caught.value.code is ErrorCode.NOT_FOUND
            assert "request_id" in caught.value.message
            worker.release.set()
            assert (await owner)[0] == expected_tokens(8)
            stored = await core.redis.keys("swarm:*")
            assert not [k for k in stored if "key-a" in k or "key-b" in k], "an API key reached Redis"

    run(scenario)


def test_an_id_sent_again_with_other_fields_is_refused_and_the_same_request_is_followed(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=2)
        async with running_core(redis_url, [worker]) as core:
            first = asyncio.create_task(collect(core.service.generate(request("r"))))
            await wait_for(lambda: worker.reached.get("r") == 2, "the run started")
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(replace(request("r"), prompt="something else")))
            assert caught.value.code is ErrorCode.ALREADY_EXISTS
            assert caught.value.message.startswith("request_id: 'r'")
            same = asyncio.create_task(collect(core.service.generate(request("r"))))
            worker.release.set()
            assert (await first)[0] == (await same)[0] == expected_tokens(8)
            assert len(worker.runs) == 1

    run(scenario)


def test_a_resume_of_an_unknown_id_or_past_the_tokens_produced_is_refused(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=3)
        async with running_core(redis_url, [worker]) as core:
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(request("unknown", resume_after_tokens=1000)))
            assert caught.value.code is ErrorCode.NOT_FOUND
            assert "request_id: no request 'unknown'" in caught.value.message
            assert worker.runs == []  # nothing ran from the start
            running = asyncio.create_task(collect(core.service.generate(request("r"))))
            await wait_for(lambda: worker.reached.get("r") == 3, "three tokens")
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(request("r", resume_after_tokens=4)))
            assert caught.value.code is ErrorCode.OUT_OF_RANGE
            assert "resume_after_tokens: 4" in caught.value.message
            worker.release.set()
            assert (await running)[0] == expected_tokens(8)

    run(scenario)


def test_a_retry_after_no_worker_could_take_the_request_continues_after_the_tokens_received(redis_url: str) -> None:
    async def scenario() -> None:
        dying, late = FakeWorker("dying", fail_at=3), FakeWorker("late", joins_at_start=False)
        async with running_core(redis_url, [dying, late], core_config(no_worker_wait_s=0.3)) as core:
            received: list[int] = []
            with pytest.raises(SwarmError) as caught:
                async for event in core.service.generate(request("r")):
                    assert isinstance(event, TextPiece)
                    received.extend(event.token_ids)
            assert caught.value.code is ErrorCode.UNAVAILABLE  # its only worker died and none came
            assert received == list(expected_tokens(3))
            assert (await core.redis.hgetall(keys.request_key("r")))["state"] == "failed"
            await core.service.join(late.info())  # a worker comes
            tokens, _, finished = await collect(core.service.generate(request("r", resume_after_tokens=3)))
            assert (*received, *tokens) == expected_tokens(8)  # continued after them, nothing repeated
            assert [tuple(r.resume_tokens) for r in late.runs] == [expected_tokens(3)]
            assert finished.completion_tokens == 8

    run(scenario)


def test_owner_digests_scoped_ids_and_fingerprints() -> None:
    owner = owner_of_key("secret-key")
    assert "secret-key" not in owner and owner != owner_of_key("other-key")
    assert scoped_request_id("", "r") == "r"  # a coordinator without keys keeps ids as sent
    assert client_request_id(scoped_request_id(owner, "r")) == "r"
    asked = request("r")
    retry = replace(asked, resume_after_tokens=5)
    assert (
        request_fingerprint(retry) == request_fingerprint(replace(asked, request_id="")) == request_fingerprint(asked)
    )
    assert request_fingerprint(replace(asked, prompt="other")) != request_fingerprint(asked)
    assert request_fingerprint(replace(asked, temperature=0.5)) != request_fingerprint(asked)
