"""Redis stopped and started again: requests already accepted, running or queued, complete once it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.process import connect_redis
from swarm.launch.local_swarm import LocalSwarm
from tests.coordinator.core_harness import FakeWorker, collect, expected_tokens, request, running_core, wait_for

pytestmark = pytest.mark.timeout(90)
# Longer than redis-py's own reconnect retries (about 0.4 s), so the coordinator must ride it out itself.
OUTAGE_S = 2.0


def test_running_and_queued_requests_complete_once_redis_is_back(tmp_path: Path) -> None:
    processes = LocalSwarm(log_dir=tmp_path)
    data_dir = tmp_path / "redis"
    url = processes.start_redis(data_dir)
    port = int(url.rsplit(":", 1)[1].split("/")[0])

    async def scenario() -> None:
        redis = await connect_redis(url)  # the coordinator's own pool: it reconnects after a restart
        worker = FakeWorker("w", slots=1, hold_at=2)
        try:
            async with running_core(url, [worker], redis=redis) as core:
                running = asyncio.create_task(collect(core.service.generate(request("running"))))
                await wait_for(lambda: worker.reached.get("running") == 2, "the first request running")
                queued = asyncio.create_task(collect(core.service.generate(request("queued"))))
                while await redis.zcard(keys.QUEUE) < 1:  # accepted: in Redis' queue behind the busy slot
                    await asyncio.sleep(0.01)

                redis_process = next(p for p in processes.processes if p.name == "redis")
                await asyncio.to_thread(redis_process.stop)
                worker.release.set()  # its next piece must be saved in Redis before the client gets it
                await wait_for(lambda: worker.reached.get("running", 0) >= 3, "a piece produced during the outage")
                await asyncio.sleep(OUTAGE_S)
                assert not running.done() and not queued.done(), "a stream ended while Redis was away"

                await asyncio.to_thread(processes.start_redis, data_dir, port)
                first, second = await asyncio.wait_for(asyncio.gather(running, queued), 40)
                assert first[0] == second[0] == expected_tokens(8)
                assert core.dispatcher.completed == 2
                assert core.dispatcher.failed == 0
        finally:
            await redis.aclose()

    try:
        asyncio.run(scenario())
    finally:
        processes.stop()
