"""A request for a planned model no worker serves is queued in Redis at once and waits there while the model
loads: the coordinator owning it keeps the model wanted (also one that took it over from a dead peer), it
waits the load wait rather than the worker wait, and it runs once a worker of the model joins. A chat for
such a model is rendered with the planned file's template, so it too is queued at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.planning.assigner import StageAssigner
from swarm.coordinator.planning.demand_store import DemandStore
from swarm.coordinator.planning.model_fleet import ModelFleet
from swarm.coordinator.planning.queued_demand import models_to_load
from swarm.coordinator.planning.shared_demand import SharedDemand
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import RawRequest, WorkerId, WorkerInfo, WorkerState, WorkerView
from tests.coordinator.core_harness import (
    Core,
    FakeWorker,
    collect,
    core_config,
    expected_tokens,
    request,
    run,
    running_core,
)
from tests.coordinator.planning.test_model_fleet import Clock, fleet_of

pytestmark = pytest.mark.timeout(60)
LEASE_TTL_S = 0.5


def request_for_b(request_id: str) -> RawRequest:
    return replace(request(request_id), model="b")


def view(worker: str, model: str, state: WorkerState = WorkerState.UP) -> WorkerView:
    return WorkerView(WorkerInfo(WorkerId(worker), f"{worker}:1", model, 256, 2, 1), state=state)


def test_models_to_load_are_the_planned_ones_waited_for_that_no_worker_up_serves() -> None:
    workers = [view("w1", "a"), view("w2", "b", WorkerState.DOWN)]
    assert models_to_load(["a", "b", "b", "x"], workers, {"a", "b", "c"}) == {"b"}  # x: not planned; c: not asked
    assert models_to_load([], workers, {"a", "b"}) == set()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0) -> None:
    """Polls an async condition; raises TimeoutError naming what never happened."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}") from None


@asynccontextmanager
async def planned_core(
    redis_url: str,
    tmp_path: Path,
    workers: list[FakeWorker],
    join: bool = True,
    fleet: ModelFleet | None = None,
    **config: object,
) -> AsyncIterator[Core]:
    """A core planning models m (served by the fake workers) and b (served by none at first), with its own fleet
    and the demand shared through Redis, as every coordinator of a swarm has."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    redis = Redis.from_url(redis_url, decode_responses=True)
    settings = core_config(**{"lease_ttl_s": LEASE_TTL_S, "no_worker_wait_s": 0.2, **config})
    demand = SharedDemand(
        fleet or fleet_of(tmp_path, "mb", Clock()),
        DemandStore(redis, settings.model_load_wait_s),
        settings.poll_interval_s,
    )
    try:
        async with running_core(redis_url, workers, settings, redis=redis, join=join, demand=demand) as core:
            yield core
    finally:
        await redis.aclose()


async def queued(core: Core, request_id: str) -> bool:
    return await core.redis.zscore(keys.QUEUE, request_id) is not None


async def wanted(core: Core, model: str) -> bool:
    return bool(await core.redis.hexists(keys.MODELS_WANTED, model))


def test_a_request_for_an_unloaded_planned_model_waits_in_the_redis_queue_wanted_and_runs_once_it_loads(
    redis_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        late = FakeWorker("wb", joins_at_start=False, model="b")
        async with planned_core(redis_url, tmp_path, [FakeWorker("w"), late], model_load_wait_s=30.0) as core:
            answer = asyncio.ensure_future(collect(core.service.generate(request_for_b("r"))))
            await eventually(lambda: queued(core, "r"), "the request for b in the Redis queue")
            await eventually(lambda: wanted(core, "b"), "b wanted in the shared demand")
            assert (await core.service.status()).queue_depth == 1
            await asyncio.sleep(0.5)  # past no_worker_wait_s (0.2 s): a planned model gets the load wait
            assert await queued(core, "r") and not answer.done()

            await core.service.join(late.info())  # b is loaded
            tokens, _, finished = await asyncio.wait_for(answer, 10)
            assert tokens == expected_tokens(8)
            assert finished.worker_id == "wb"
            assert not await queued(core, "r")

    run(scenario)


def test_a_request_whose_planned_model_never_loads_fails_after_the_load_wait_saying_so(
    redis_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with planned_core(redis_url, tmp_path, [FakeWorker("w")], model_load_wait_s=1.0) as core:
            with pytest.raises(SwarmError) as failed:
                await asyncio.wait_for(collect(core.service.generate(request_for_b("r"))), 10)
            assert failed.value.code is ErrorCode.UNAVAILABLE
            assert "model 'b' is still loading (waited 1 s); retry shortly" in failed.value.message
            assert not await queued(core, "r")

    run(scenario)


def test_a_coordinator_that_takes_over_a_dead_peer_s_queued_request_keeps_its_model_wanted_and_runs_it(
    redis_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        late = FakeWorker("wb", joins_at_start=False, model="b")
        workers = [FakeWorker("w"), late]
        async with (
            planned_core(redis_url, tmp_path / "a", workers, model_load_wait_s=30.0) as a,
            planned_core(redis_url, tmp_path / "b", workers, join=False, model_load_wait_s=30.0) as b,
        ):
            following = asyncio.ensure_future(anext(a.service.generate(request_for_b("r"))))
            await eventually(lambda: queued(a, "r"), "A queued the request for b")
            await eventually(lambda: wanted(a, "b"), "A wanted b")
            await a.die()
            following.cancel()
            await a.redis.delete(keys.MODELS_WANTED)  # A's want lapses: only the new owner can renew it

            async def owned_by_b() -> bool:
                return await b.redis.get(keys.request_lease_key("r")) == b.store.leases.owner

            await eventually(owned_by_b, "B took the queued request over", timeout_s=5)
            await eventually(lambda: wanted(b, "b"), "B wanting b for the request it took over", timeout_s=5)
            assert await queued(b, "r")

            await b.service.join(late.info())
            await eventually(lambda: asyncio.sleep(0, "r" in late.reached), "the request run on b's worker")
            tokens, _, finished = await asyncio.wait_for(collect(b.service.generate(request_for_b("r"))), 10)
            assert tokens == expected_tokens(8)  # its kept result, or the run it follows
            assert finished.worker_id == "wb"
            assert [r.request_id for r in late.runs] == ["r"]

    run(scenario)


def test_a_chat_for_an_unloaded_planned_model_gets_the_model_file_s_template_without_waiting_for_a_worker(
    redis_url: str, tmp_path: Path
) -> None:
    """A chat's prompt is rendered before it is queued: with the template of the planned file, not a worker's."""
    template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    files = {
        "m": write_tiny_llama(tmp_path / "m.gguf", seed=0),
        "b": write_tiny_llama(tmp_path / "b.gguf", seed=1, chat_template=template),
    }
    fleet = ModelFleet([StageAssigner(path, name, tmp_path / "plans") for name, path in files.items()])

    async def scenario() -> None:
        async with planned_core(redis_url, tmp_path, [FakeWorker("w")], fleet=fleet) as core:
            assert await core.service.chat_template("b") == template
            assert await core.service.chat_template("m") == ""  # the fake worker reports none; its file has none
            assert not await wanted(core, "b"), "asking for the template loads nothing"

    run(scenario)
