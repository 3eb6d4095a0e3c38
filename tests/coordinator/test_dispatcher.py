"""The request core in-process on a real Redis: dispatch, relay, failover, recovery, cancel, and every stream ends."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.request_store import RequestStore
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import GenerationRequest, SamplingParams, TextPiece
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
    token,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


async def redis_state(core: Core, request_id: str) -> dict[str, str]:
    return dict(await core.redis.hgetall(keys.request_key(request_id)))


async def kept_for_a_retry(core: Core, request_id: str) -> bool:
    """Failed for want of a worker: neither queued nor running, kept a while for the client's retry to resume."""
    idle = not await core.redis.sismember(keys.RUNNING, request_id) and not await core.redis.zscore(
        keys.QUEUE, request_id
    )
    ttl = await core.redis.ttl(keys.request_key(request_id))
    return idle and (await redis_state(core, request_id))["state"] == "failed" and 0 < ttl <= keys.FAILED_TTL_S


def test_a_request_runs_on_the_least_loaded_worker_and_leaves_redis_once_delivered(redis_url: str) -> None:
    async def scenario() -> None:
        busy, idle = FakeWorker("busy", hold_at=1), FakeWorker("idle")
        async with running_core(redis_url, [busy, idle]) as core:
            first = asyncio.create_task(collect(core.service.generate(request("first"))))
            await wait_for(lambda: busy.reached.get("first") == 1, "first runs on 'busy' (ties go by worker id)")
            tokens, text, finished = await collect(core.service.generate(request("second", max_tokens=5)))
            assert tokens == expected_tokens(5)
            assert text == "t0 t1 t2 t3 t4 "
            assert finished.worker_id == "idle"
            busy.release.set()
            assert (await first)[0] == expected_tokens(8)
            assert await left_redis(core, "first")
            assert await left_redis(core, "second")
            assert core.dispatcher.completed == 2

    run(scenario)


def test_a_failed_worker_s_request_resumes_elsewhere_after_the_tokens_sent(redis_url: str) -> None:
    async def scenario() -> None:
        dying, spare = FakeWorker("dying", fail_at=3), FakeWorker("spare", slots=1)
        async with running_core(redis_url, [dying, spare]) as core:
            tokens, _, finished = await collect(core.service.generate(request("r", max_tokens=8)))
            assert tokens == expected_tokens(8)  # none lost, none repeated
            assert finished.worker_id == "spare"
            assert [tuple(r.resume_tokens) for r in dying.runs] == [()]
            assert [tuple(r.resume_tokens) for r in spare.runs] == [expected_tokens(3)]
            assert core.dispatcher.failovers == 1
            assert not await core.redis.exists(keys.heartbeat_key("dying"))  # marked down until it heartbeats
            assert await left_redis(core, "r")

    run(scenario)


def test_a_whole_answer_request_lets_each_worker_it_runs_on_hold_pieces_and_a_streamed_one_not(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        dying, spare = FakeWorker("dying", fail_at=3), FakeWorker("spare", slots=1)
        config = core_config(whole_answer_piece_interval_s=0.75)
        async with running_core(redis_url, [dying, spare], config) as core:
            tokens, _, _ = await collect(core.service.generate(request("whole", max_tokens=8), whole_answer=True))
            assert tokens == expected_tokens(8)
            assert [r.piece_interval_ms for r in (*dying.runs, *spare.runs)] == [750, 750]  # the resumed run too
            await collect(core.service.generate(request("streamed", max_tokens=2)))
            assert spare.runs[-1].request_id == "streamed" and spare.runs[-1].piece_interval_ms == 0

    run(scenario)


def test_workers_failing_in_a_row_without_progress_fail_the_request_after_max_attempts(redis_url: str) -> None:
    async def scenario() -> None:
        workers = [FakeWorker(f"w{i}", fail_at=0) for i in range(3)]
        async with running_core(redis_url, workers, core_config(max_attempts=2)) as core:
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(request("r")))
            assert caught.value.code is ErrorCode.UNAVAILABLE
            assert "2 workers in a row failed" in caught.value.message
            assert sum(len(w.runs) for w in workers) == 2
            assert core.dispatcher.failed == 1
            assert await kept_for_a_retry(core, "r")

    run(scenario)


def test_a_worker_refusing_the_request_fails_it_without_failover(redis_url: str) -> None:
    async def scenario() -> None:
        picky = FakeWorker("picky", refuse=grpc.StatusCode.INVALID_ARGUMENT)
        async with running_core(redis_url, [picky, FakeWorker("spare")]) as core:
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(request("r")))
            assert caught.value.code is ErrorCode.INVALID_ARGUMENT
            assert caught.value.message == "refused by the fake worker"
            assert core.dispatcher.failovers == 0
            assert await left_redis(core, "r")

    run(scenario)


def test_a_client_that_goes_away_stops_the_run_and_frees_the_slot(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=2)
        async with running_core(redis_url, [worker]) as core:
            events = core.service.generate(request("r"))
            assert isinstance(await anext(events), TextPiece)
            await wait_for(lambda: worker.reached.get("r") == 2, "two tokens")
            await events.aclose()  # type: ignore[attr-defined]
            await wait_for(lambda: core.dispatcher.views()[0].inflight == 0, "the slot freed")
            assert await left_redis(core, "r")
            assert core.dispatcher.completed == 0

    run(scenario)


def test_a_client_leaving_as_its_request_is_dispatched_frees_the_slot(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's cancel cancels the relay task in the same turn the dispatcher started it, before its first
    step: the task never runs its coroutine. Its slot must still be counted free. A stopped flood's hundreds of
    cancels hit this now and then; each such slot stayed counted busy for good, and once three of a 4-slot
    worker's were lost a quiet tenant's requests waited for a whole flood request (bench-fair-queue's 1.4 s)."""

    async def scenario() -> None:
        worker = FakeWorker("w", slots=1, hold_at=1)
        async with running_core(redis_url, [worker]) as core:
            checking, claimed = asyncio.Event(), asyncio.Event()
            claim_many, watched = core.store.claim_many, core.store.watched

            async def claim_then_tell(pairs: list[tuple[str, str]]) -> list[bool]:
                won = await claim_many(pairs)
                if ("r", "w") in pairs:
                    claimed.set()  # wakes the leaving client's check before the dispatcher starts r's relay
                return won

            async def watched_answering_with_the_claim(request_id: str) -> bool:
                answer = await watched(request_id)
                if request_id == "r":
                    checking.set()
                    await claimed.wait()
                return answer

            monkeypatch.setattr(core.store, "claim_many", claim_then_tell)
            monkeypatch.setattr(core.store, "watched", watched_answering_with_the_claim)
            blocker = asyncio.create_task(collect(core.service.generate(request("blocker"))))
            await wait_for(lambda: worker.reached.get("blocker") == 1, "the blocker holding the only slot")
            leaving = asyncio.create_task(anext(core.service.generate(request("r"))))
            await wait_for(lambda: "r" in core.dispatcher.requests_by_tenant().get("", []), "r queued")
            leaving.cancel()  # its client goes away while r waits for the slot
            await asyncio.wait_for(checking.wait(), 5)
            worker.release.set()  # the blocker ends; r is claimed, started, and cancelled before its first step
            await blocker
            with contextlib.suppress(asyncio.CancelledError):
                await leaving
            assert [run.request_id for run in worker.runs] == ["blocker"]  # r's relay never ran
            await wait_for(lambda: core.dispatcher.views()[0].inflight == 0, "r's slot counted free", timeout_s=5)
            tokens, _, _ = await collect(core.service.generate(request("after", max_tokens=3)))
            assert tokens == expected_tokens(3)
            assert await left_redis(core, "r")

    run(scenario)


def test_two_calls_with_one_new_request_id_share_one_run(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=2)
        async with running_core(redis_url, [worker]) as core:
            calls = [asyncio.create_task(collect(core.service.generate(request("same")))) for _ in range(2)]
            await wait_for(lambda: worker.reached.get("same") == 2, "the run started")
            worker.release.set()
            (first, _, _), (second, _, _) = await asyncio.gather(*calls)
            assert first == second == expected_tokens(8)
            assert len(worker.runs) == 1
            assert await left_redis(core, "same")

    run(scenario)


def test_a_follower_leaving_does_not_cancel_the_run_another_follows(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", hold_at=2)
        async with running_core(redis_url, [worker]) as core:
            staying = asyncio.create_task(collect(core.service.generate(request("r"))))
            await wait_for(lambda: worker.reached.get("r") == 2, "the run started")
            leaving = core.service.generate(request("r"))
            await anext(leaving)
            await leaving.aclose()  # type: ignore[attr-defined]
            worker.release.set()
            assert (await staying)[0] == expected_tokens(8)

    run(scenario)


async def leave_running(redis: Redis, request_id: str, sent: int, max_tokens: int = 8) -> None:
    """What a coordinator killed mid-stream leaves in Redis: the request running, the pieces it sent, a lease
    that expires at once."""
    store = RequestStore(redis, "gone", lease_ttl_s=0.01)
    generation = GenerationRequest(request_id, "m", "hello there", max_tokens, SamplingParams(temperature=0.0))
    await store.enqueue(generation)
    assert await store.claim_many([(request_id, "gone")]) == [True]
    for position in range(sent):
        await store.save_piece(request_id, position, TextPiece(f"t{position} ", (token(position),)))


def test_a_restarted_coordinator_resumes_a_running_request_after_the_pieces_sent(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        await leave_running(redis, "r", sent=3)
        await redis.aclose()
        worker = FakeWorker("w", hold_at=5)
        async with running_core(redis_url, [worker]) as core:
            await wait_for(lambda: worker.reached.get("r") == 5, "the resumed run")
            assert [tuple(r.resume_tokens) for r in worker.runs] == [expected_tokens(3)]
            events = await core.dispatcher.attach("r", "", skip_tokens=2)  # the client got two pieces
            assert events is not None
            worker.release.set()
            tokens, text, finished = await collect(events)
            assert tokens == expected_tokens(8)[2:]
            assert text == "t2 t3 t4 t5 t6 t7 "
            assert finished.completion_tokens == 8
            assert await left_redis(core, "r")

    run(scenario)


def test_a_result_nobody_waited_for_is_kept_until_a_client_asks(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        await leave_running(redis, "r", sent=2)
        await redis.aclose()
        async with running_core(redis_url, [FakeWorker("w")]) as core:
            await wait_for(lambda: core.dispatcher.completed == 1, "the recovered request done")
            await wait_for(lambda: "r" not in core.dispatcher._requests, "the record dropped")
            assert (await redis_state(core, "r"))["state"] == "done"
            assert await core.redis.ttl(keys.request_key("r")) > 0
            tokens, _, _ = await collect(core.service.generate(request("r", resume_after_tokens=4)))
            assert tokens == expected_tokens(8)[4:]
            assert await left_redis(core, "r")

    run(scenario)


def test_a_resume_inside_a_piece_is_refused_naming_the_field(redis_url: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = RequestStore(redis, "gone")  # the owner that left it: only the owner writes its pieces
        await leave_running(redis, "r", sent=0)
        await store.save_piece("r", 0, TextPiece("t0 t1 ", (token(0), token(1))))
        await redis.aclose()
        worker = FakeWorker("w", hold_at=3)
        async with running_core(redis_url, [worker]) as core:
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(request("r", resume_after_tokens=1)))
            assert caught.value.code is ErrorCode.INVALID_ARGUMENT
            assert "resume_after_tokens" in caught.value.message
            worker.release.set()  # a bad follower does not end the run
            await wait_for(lambda: core.dispatcher.completed == 1, "the run done")

    run(scenario)


def test_a_request_whose_model_has_no_worker_fails_after_the_wait(redis_url: str) -> None:
    async def scenario() -> None:
        async with running_core(redis_url, [FakeWorker("w")], core_config(no_worker_wait_s=0.2)) as core:
            await core.registry.mark_down("w")
            await core.monitor.refresh()
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(request("r")))
            assert caught.value.code is ErrorCode.UNAVAILABLE
            assert "no worker serving model 'm' is up" in caught.value.message
            assert await kept_for_a_retry(core, "r")

    run(scenario)


def test_an_unexpected_error_in_the_relay_fails_the_stream(redis_url: str) -> None:
    async def scenario() -> None:
        worker = FakeWorker("w", fail_at=2)
        async with running_core(redis_url, [worker]) as core:

            async def broken(worker_id: str) -> None:
                raise RuntimeError("a bug in failover")

            core.registry.mark_down = broken  # type: ignore[method-assign,assignment]
            with pytest.raises(SwarmError) as caught:
                await collect(core.service.generate(request("r")))
            assert caught.value.code is ErrorCode.INTERNAL
            assert "r" not in core.dispatcher._requests
            assert await left_redis(core, "r")

    run(scenario)


def test_redis_failing_in_the_relay_fails_the_stream_as_unavailable_and_a_retry_resumes(redis_url: str) -> None:
    async def scenario() -> None:
        dying = FakeWorker("dying", fail_at=3)
        async with running_core(redis_url, [dying], redis_patience_s=0.2) as core:
            real_mark_down = core.registry.mark_down

            async def redis_away(worker_id: str) -> None:
                raise RedisConnectionError("Connection refused")

            core.registry.mark_down = redis_away  # type: ignore[method-assign,assignment]
            received: list[int] = []
            with pytest.raises(SwarmError) as caught:
                async for event in core.service.generate(request("r")):
                    assert isinstance(event, TextPiece)
                    received.extend(event.token_ids)
            assert caught.value.code is ErrorCode.UNAVAILABLE
            assert "r" not in core.dispatcher._requests
            core.registry.mark_down = real_mark_down  # type: ignore[method-assign]
            dying.fail_at = None
            retry = request("r", resume_after_tokens=len(received))
            tokens, _, _ = await collect(core.service.generate(retry))
            assert (*received, *tokens) == expected_tokens(8)
            assert tuple(dying.runs[-1].resume_tokens) == expected_tokens(3)

    run(scenario)
