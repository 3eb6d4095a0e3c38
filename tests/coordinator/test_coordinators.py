"""Two request cores on one Redis: leases keep each request with one live owner; a dead one's are taken over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from swarm.coordinator import redis_keys as keys
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import TextPiece
from tests.coordinator.core_harness import (
    Core,
    FakeWorker,
    collect,
    core_config,
    expected_tokens,
    left_redis,
    request,
    run,
    running_core,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)
LEASE_TTL_S = 0.5


@asynccontextmanager
async def two_cores(redis_url: str, workers: list[FakeWorker], **config: Any) -> AsyncIterator[tuple[Core, Core]]:
    """Coordinators A and B on one Redis with a short lease; the workers joined through A."""
    settings = core_config(**{"lease_ttl_s": LEASE_TTL_S, **config})
    async with (
        running_core(redis_url, workers, settings) as a,
        running_core(redis_url, workers, settings, join=False) as b,
    ):
        yield a, b


async def lease_owner(core: Core, request_id: str) -> str:
    return str(await core.redis.get(keys.request_lease_key(request_id)) or "")


def test_a_peer_never_requeues_or_reruns_a_request_a_live_coordinator_runs(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=3)
        config = core_config(lease_ttl_s=LEASE_TTL_S)
        async with running_core(redis_url, [worker], config) as a:
            events = a.service.generate(request("r"))
            first = await anext(events)
            assert isinstance(first, TextPiece)
            await wait_for(lambda: worker.reached.get("r") == 3, "the run on A held at 3 tokens")
            async with running_core(redis_url, [worker], config, join=False) as b:  # B's recover() runs now
                await asyncio.sleep(4 * LEASE_TTL_S)  # several renewals and orphan scans on both sides
                assert len(worker.runs) == 1, "B ran the request A runs"
                assert "r" not in b.dispatcher._requests
                assert await lease_owner(a, "r") == a.store.leases.owner
                assert await a.redis.sismember(keys.RUNNING, "r")
                worker.release.set()
                tokens, _, _ = await collect(events)
                assert (*first.token_ids, *tokens) == expected_tokens(8)
                assert len(worker.runs) == 1
                assert await left_redis(a, "r")

    run(scenario)


def test_a_dead_coordinator_s_request_is_taken_over_within_the_lease_and_resumes_after_the_saved_pieces(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=3)
        async with two_cores(redis_url, [worker]) as (a, b):
            events = a.service.generate(request("r"))
            received: list[int] = []  # the tokens the client has from A
            while len(received) < 3:
                piece = await anext(events)
                assert isinstance(piece, TextPiece)
                received.extend(piece.token_ids)
            assert received == list(expected_tokens(3))
            await wait_for(lambda: worker.reached.get("r") == 3, "the run on A held at 3 tokens")
            await a.die()
            died = time.monotonic()
            worker.hold_at = None
            # The client comes back through B before A's lease has expired: B follows, then takes over.
            resumed = asyncio.create_task(collect(b.service.generate(request("r", resume_after_tokens=3))))
            await wait_for(lambda: len(worker.runs) == 2, "B's run of the request", timeout_s=5)
            assert time.monotonic() - died < LEASE_TTL_S + 1.5
            assert tuple(worker.runs[1].resume_tokens) == expected_tokens(3)  # after the saved pieces
            tokens, text, finished = await resumed
            assert tokens == expected_tokens(8)[3:]
            assert text == "t3 t4 t5 t6 t7 "
            assert finished.completion_tokens == 8
            assert len(worker.runs) == 2
            assert await left_redis(b, "r")

    run(scenario)


def test_a_queued_request_of_a_dead_coordinator_is_taken_over_and_run(redis_url: str) -> None:
    async def scenario() -> None:
        busy = FakeWorker("w", slots=1, hold_at=1)
        async with two_cores(redis_url, [busy], no_worker_wait_s=10.0) as (a, b):
            first = a.service.generate(request("first"))
            await anext(first)
            await wait_for(lambda: busy.reached.get("first") == 1, "A's first request holds the only slot")
            waiting = a.service.generate(request("waiting"))
            waiting_task = asyncio.ensure_future(anext(waiting))
            await wait_for(lambda: "waiting" in a.dispatcher._requests, "A queued the second request")
            await a.die()
            waiting_task.cancel()
            busy.hold_at = None
            busy.release.set()
            assert "waiting" not in [r.request_id for r in busy.runs], "A ran the request before it died"
            await wait_for(
                lambda: "waiting" in [r.request_id for r in busy.runs], "B took the queued request over", timeout_s=5
            )
            tokens, _, _ = await collect(b.service.generate(request("waiting")))  # its kept result
            assert tokens == expected_tokens(8)
            assert [r.request_id for r in busy.runs].count("waiting") == 1

    run(scenario)


def test_a_client_following_through_a_peer_gets_every_piece_once_even_after_the_owner_s_client_left(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=2)
        async with two_cores(redis_url, [worker]) as (a, b):
            own = a.service.generate(request("r"))
            assert isinstance(await anext(own), TextPiece)
            await wait_for(lambda: worker.reached.get("r") == 2, "the run on A held at 2 tokens")
            followed = b.service.generate(request("r"))
            first = await anext(followed)
            assert isinstance(first, TextPiece)
            await own.aclose()  # type: ignore[attr-defined]  # A's own client leaves; B's still follows
            worker.release.set()
            tokens, _, finished = await collect(followed)
            assert (*first.token_ids, *tokens) == expected_tokens(8)  # every piece exactly once
            assert finished.completion_tokens == 8
            assert len(worker.runs) == 1, "the run was cancelled or run again"
            assert "r" not in b.dispatcher._requests
            assert await left_redis(a, "r")

    run(scenario)


def test_a_worker_whose_slots_a_peer_filled_is_not_failed_the_request_waits_for_a_slot(redis_url: str) -> None:
    async def scenario() -> None:
        # Its slot is taken by another coordinator's request, which this one does not count: it refuses.
        worker = FakeWorker("w", slots=1, refuse=grpc.StatusCode.RESOURCE_EXHAUSTED)
        async with running_core(redis_url, [worker], core_config(max_attempts=1, lease_ttl_s=LEASE_TTL_S)) as core:
            done = asyncio.create_task(collect(core.service.generate(request("r"))))
            await wait_for(lambda: len(worker.runs) >= 2, "the request tried again after the refusal")
            worker.refuse = None  # the peer's request ended
            tokens, _, _ = await done
            assert tokens == expected_tokens(8)
            assert core.dispatcher.failovers == 0
            assert await core.redis.exists(keys.heartbeat_key("w")), "the worker was marked down"

    run(scenario)


def test_a_coordinator_too_slow_to_renew_whose_request_a_peer_took_stops_its_run_and_its_client_retries(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=3)
        async with two_cores(redis_url, [worker]) as (a, b):
            events = a.service.generate(request("r"))
            received: list[int] = []
            while len(received) < 3:
                piece = await anext(events)
                assert isinstance(piece, TextPiece)
                received.extend(piece.token_ids)
            await wait_for(lambda: worker.reached.get("r") == 3, "the run on A held at 3 tokens")
            # A's lease lapsed (A stalled) and B took the request over before A renewed it.
            await a.redis.delete(keys.request_lease_key("r"))
            assert await b.dispatcher._leases.take_over("r") is not None
            worker.hold_at = None
            with pytest.raises(SwarmError) as caught:
                await collect(events)
            assert caught.value.code is ErrorCode.UNAVAILABLE
            assert "r" not in a.dispatcher._requests
            tokens, _, _ = await collect(b.service.generate(request("r", resume_after_tokens=3)))
            assert (*received, *tokens) == expected_tokens(8)
            assert [tuple(run.resume_tokens) for run in worker.runs] == [(), expected_tokens(3)]

    run(scenario)


def test_a_coordinator_stopping_cleanly_leaves_its_requests_to_a_peer_at_once(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=3)
        config = core_config(lease_ttl_s=60.0)  # a takeover within the test's time needs the lease given up
        async with running_core(redis_url, [worker], config, join=False) as b:
            async with running_core(redis_url, [worker], config) as a:
                events = a.service.generate(request("r"))
                received: list[int] = []
                while len(received) < 3:
                    piece = await anext(events)
                    assert isinstance(piece, TextPiece)
                    received.extend(piece.token_ids)
                await wait_for(lambda: worker.reached.get("r") == 3, "the run on A held at 3 tokens")
                a.dispatcher.begin_shutdown()
                await events.aclose()  # type: ignore[attr-defined]  # the server breaks the stream off
                assert await a.redis.exists(keys.request_key("r")), "A forgot the request of a client it cut off"
            worker.hold_at = None
            tokens, _, _ = await collect(b.service.generate(request("r", resume_after_tokens=3)))
            assert (*received, *tokens) == expected_tokens(8)
            assert [tuple(run.resume_tokens) for run in worker.runs] == [(), expected_tokens(3)]

    run(scenario)
