"""The dispatcher keeps fair queue order in Redis: a request whose enqueue is under way does not jump the queue."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.request_store import Admitted
from swarm.shared.types import GenerationRequest
from tests.coordinator.core_harness import FakeWorker, collect, request, run, running_core, wait_for

pytestmark = pytest.mark.timeout(60)


def test_a_request_still_being_queued_waits_for_its_place_instead_of_going_first(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its score is not known to the dispatcher until its enqueue returns. Taken as 0 (first), a flood's fresh
    request was dispatched before its tenant's hundreds queued earlier whenever Redis had queued it by the
    claim, and moved the class's virtual time to its tag: every later request of another tenant then
    queued behind the whole flood."""

    async def scenario() -> None:
        worker = FakeWorker("w", slots=1, hold_at=1)
        async with running_core(redis_url, [worker]) as core:
            late_queued, claim_seen = asyncio.Event(), asyncio.Event()
            admit, claim_many = core.store.admit, core.store.claim_many

            async def admit_answering_after_a_claim(queued: GenerationRequest, **how: Any) -> Admitted:
                answer = await admit(queued, **how)
                if queued.request_id == "late":
                    late_queued.set()  # in Redis, but the dispatcher does not know its score yet
                    await claim_seen.wait()
                return answer

            async def claim_then_tell(pairs: list[tuple[str, str]]) -> list[bool]:
                won = await claim_many(pairs)
                claim_seen.set()
                return won

            monkeypatch.setattr(core.store, "admit", admit_answering_after_a_claim)
            monkeypatch.setattr(core.store, "claim_many", claim_then_tell)
            blocker = asyncio.create_task(collect(core.service.generate(request("blocker", max_tokens=2))))
            await wait_for(lambda: worker.reached.get("blocker") == 1, "the blocker holding the only slot")
            claim_seen.clear()
            early = asyncio.create_task(collect(core.service.generate(request("early", max_tokens=2))))
            await wait_for(lambda: "early" in core.dispatcher.requests_by_tenant().get("", []), "early admitted")
            async with asyncio.timeout(5):
                while await core.redis.zscore(keys.QUEUE, "early") is None:
                    await asyncio.sleep(0.01)
            late = asyncio.create_task(collect(core.service.generate(request("late", max_tokens=2))))
            await asyncio.wait_for(late_queued.wait(), 5)
            worker.release.set()  # the slot frees while late's enqueue has not returned
            await asyncio.gather(blocker, early, late)
            assert [run.request_id for run in worker.runs] == ["blocker", "early", "late"]

    run(scenario)
