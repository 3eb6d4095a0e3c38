"""Batch jobs in a real Redis: each line's first result wins, counts move once, batch lines queue last."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.batch.runner import batch_request_id
from swarm.coordinator.batch.service import BatchService
from swarm.coordinator.batch.store import BatchStore
from swarm.coordinator.batch.submitter import NO_SUBMITTER, Submitter
from swarm.coordinator.fairness.queue_tags import BATCH
from swarm.coordinator.fairness.request_tenant import with_tenant
from swarm.coordinator.request_store import RequestStore
from swarm.coordinator.tenancy.caller import OPEN_CALLER, Access, Caller
from swarm.coordinator.tenancy.key_record import KeyRecord
from swarm.shared.batch_types import BatchLimits, BatchLine, BatchResult, BatchState
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import FinishReason, GenerationRequest, RawRequest, SamplingParams
from swarm.shared.validation import RequestLimits

T = TypeVar("T")
pytestmark = pytest.mark.timeout(30)


def with_store(redis_url: str, scenario: Callable[[BatchStore, Redis], Awaitable[T]], **limits: int) -> T:
    async def run() -> T:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            store = BatchStore(redis, BatchLimits(**limits))
            await store.ensure_group()
            return await scenario(store, redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def lines(count: int) -> list[BatchLine]:
    return [BatchLine(RawRequest(prompt=f"prompt {i}", seed=i), f"id-{i}") for i in range(count)]


def text_result(line: int, text: str) -> BatchResult:
    return BatchResult(line, f"id-{line - 1}", text, FinishReason.LENGTH, 2, 3)


def test_each_line_is_handed_out_once_and_its_first_result_wins(redis_url: str) -> None:
    async def scenario(store: BatchStore, redis: Redis) -> None:
        await store.create("job-a", "tiny", lines(3), now_ms=1000)
        assert await redis.ttl(keys.batch_lines_key("job-a")) == -1  # staged lines are kept once the job exists
        items = await store.next_items("runner-1", 10, block_ms=10)
        assert [(i.job_id, i.index) for i in items] == [("job-a", 0), ("job-a", 1), ("job-a", 2)]
        assert await store.next_items("runner-2", 10, block_ms=10) == []
        work = await store.work_for(items[1])
        assert work is not None
        assert work.line == lines(3)[1]
        assert work.job_model == "tiny"

        assert await store.record("job-a", text_result(2, "first"), now_ms=2000)
        assert not await store.record("job-a", text_result(2, "second"), now_ms=2000)  # a rerun after a crash
        assert await store.work_for(items[1]) is None  # recorded: nothing left to run
        await store.finish_item(items[1])
        assert await store.record("job-a", BatchResult(1, "id-0", error="UNAVAILABLE: gone"), now_ms=2000)
        summary = await store.summary("job-a")
        assert summary is not None
        assert (summary.state, summary.done, summary.failed, summary.total) == (BatchState.RUNNING, 1, 1, 3)

        assert await store.record("job-a", text_result(3, "last"), now_ms=3000)
        summary = await store.summary("job-a")
        assert summary is not None
        assert (summary.state, summary.done, summary.failed, summary.finished_ms) == (BatchState.DONE, 2, 1, 3000)
        assert await redis.exists(keys.batch_lines_key("job-a")) == 0  # lines dropped once all have results
        assert 0 < await redis.ttl(keys.batch_results_key("job-a")) <= BatchLimits().keep_finished_s
        results = await store.results("job-a", 0, 3)
        assert [r.text if r else None for r in results] == ["", "first", "last"]
        assert results[0] is not None and results[0].error == "UNAVAILABLE: gone"

    with_store(redis_url, scenario)


def test_items_of_a_dead_runner_are_claimed_but_not_those_kept_alive(redis_url: str) -> None:
    async def scenario(store: BatchStore, redis: Redis) -> None:
        await store.create("job-b", "", lines(2), now_ms=1000)
        taken = await store.next_items("dead-runner", 1, block_ms=10)
        kept = await store.next_items("live-runner", 1, block_ms=10)
        await asyncio.sleep(0.3)
        await store.keep_claimed("live-runner", [kept[0].entry_id])
        claimed = await store.claim_stale("new-runner", min_idle_ms=200, count=10)
        assert claimed == taken
        await asyncio.sleep(0.3)
        assert await store.forget_consumers(min_idle_ms=200) == 1  # the dead runner, its item taken over
        names = {c["name"] for c in await redis.xinfo_consumers(keys.BATCH_WORK, keys.BATCH_GROUP)}
        assert names == {"live-runner", "new-runner"}  # both hold an item

    with_store(redis_url, scenario)


def test_a_cancelled_job_runs_no_more_lines(redis_url: str) -> None:
    async def scenario(store: BatchStore, redis: Redis) -> None:
        await store.create("job-c", "", lines(2), now_ms=1000)
        cancelled = await store.cancel("job-c", now_ms=5000)
        assert cancelled is not None
        assert (cancelled.state, cancelled.finished_ms) == (BatchState.CANCELLED, 5000)
        items = await store.next_items("runner", 10, block_ms=10)
        assert len(items) == 2
        assert [await store.work_for(item) for item in items] == [None, None]
        assert await store.cancel("job-unknown", now_ms=5000) is None
        assert [s.job_id for s in await store.summaries()] == ["job-c"]

    with_store(redis_url, scenario)


def test_a_job_keeps_its_submitter_and_its_lines_run_as_that_keys_batch_work(redis_url: str) -> None:
    async def scenario(store: BatchStore, redis: Redis) -> None:
        caller = Caller(name="alice", owner="alices-namespace", admin=False, priority=0, weight=2.5)
        service = BatchService(store, BatchLimits(), RequestLimits())
        job = await service.submit("", lines(1), Access(caller, KeyRecord("alice"), "alices-digest"))
        assert job.owner == "alices-namespace"
        work = await store.work_for((await store.next_items("runner", 1, block_ms=10))[0])
        assert work is not None
        assert work.submitter == Submitter("alices-namespace", "alice", 0, 2.5, "alices-digest")
        line_access = work.submitter.line_access()
        assert line_access.record is None  # not held to the key's per-minute or stream limits
        line = with_tenant(
            GenerationRequest(batch_request_id(job.job_id, 0), "tiny", "p", 4, SamplingParams()), line_access.caller
        )
        assert (line.tenant, line.priority, line.weight) == ("alice", BATCH, 2.5)

        # A job stored before submitters were kept runs as no key's, as it did then.
        await store.create("job-old", "", lines(1), now_ms=1000)
        await redis.hdel(keys.batch_job_key("job-old"), "tenant", "priority", "weight", "key")
        old = await store.work_for((await store.next_items("runner", 1, block_ms=10))[0])
        assert old is not None and old.submitter == NO_SUBMITTER

    with_store(redis_url, scenario)


def test_summaries_are_newest_first_and_forget_expired_jobs(redis_url: str) -> None:
    async def scenario(store: BatchStore, redis: Redis) -> None:
        await store.create("job-old", "", lines(1), now_ms=1000)
        await store.create("job-new", "", lines(2), now_ms=2000)
        await store.create("job-gone", "", lines(1), now_ms=1500)
        await redis.delete(keys.batch_job_key("job-gone"))  # as when its expiry passed
        summaries = await store.summaries()
        assert [(s.job_id, s.total, s.created_ms) for s in summaries] == [("job-new", 2, 2000), ("job-old", 1, 1000)]
        assert await redis.zrange(keys.BATCH_JOBS, 0, -1) == ["job-old", "job-new"]

    with_store(redis_url, scenario)


def test_the_service_refuses_bad_lines_and_oversized_jobs_storing_nothing(redis_url: str) -> None:
    async def scenario(store: BatchStore, redis: Redis) -> None:
        service = BatchService(store, BatchLimits(max_lines=3), RequestLimits())
        bad = [*lines(2), BatchLine(RawRequest(prompt="x", top_p=2.0))]
        with pytest.raises(SwarmError) as caught:
            await service.submit("", bad)
        assert caught.value.code == ErrorCode.INVALID_ARGUMENT
        assert caught.value.message.startswith("line 3: top_p: must be in (0, 1]")
        with pytest.raises(SwarmError) as caught:
            await service.submit("", lines(4))
        assert caught.value.code == ErrorCode.RESOURCE_EXHAUSTED
        assert await service.list() == []
        assert await redis.xlen(keys.BATCH_WORK) == 0

        job = await service.submit("", [BatchLine(RawRequest(prompt="unseeded"))])
        work = await store.work_for((await store.next_items("runner", 1, block_ms=10))[0])
        assert work is not None and work.line.request.seed is not None  # a rerun samples the same text
        with pytest.raises(SwarmError) as caught:
            [r async for r in service.results(job.job_id, partial=False)]
        assert caught.value.code == ErrorCode.FAILED_PRECONDITION
        assert [r async for r in service.results(job.job_id, partial=True)] == []

    with_store(redis_url, scenario)


def test_batch_lines_queue_behind_interactive_requests_even_when_requeued(redis_url: str) -> None:
    def request(request_id: str) -> GenerationRequest:
        return with_tenant(GenerationRequest(request_id, "tiny", "p", 4, SamplingParams()), OPEN_CALLER)

    async def scenario(_store: BatchStore, redis: Redis) -> None:
        queue = RequestStore(redis)
        batch_line = batch_request_id("job-d", 0)
        _, score = await queue.enqueue(request(batch_line))
        await queue.enqueue(request("interactive-1"))
        await queue.enqueue(request("interactive-2"))
        assert await queue.waiting(10) == ["interactive-1", "interactive-2", batch_line]
        assert await queue.claim_many([(batch_line, "w1")]) == [True]
        await queue.requeue(batch_line, score)  # its worker died
        await queue.enqueue(request("interactive-3"))
        assert await queue.waiting(10) == ["interactive-1", "interactive-2", "interactive-3", batch_line]

    with_store(redis_url, scenario)
