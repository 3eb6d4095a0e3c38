"""Redis clients from one URL: Sentinel URLs parsed and checked, the primary found again after a failover, WAIT real."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.request_store import RequestStore
from swarm.launch.local_swarm import LocalSwarm, free_port
from swarm.shared.redis_connection import (
    DurableWrites,
    SentinelTarget,
    check_redis_url,
    close_redis,
    connect_redis,
    parse_sentinel_url,
)
from swarm.shared.types import GenerationRequest, SamplingParams

pytestmark = pytest.mark.timeout(90)


def test_a_sentinel_url_names_the_sentinels_service_database_and_passwords() -> None:
    url = "redis+sentinel://app:p%40ss@s1.lan:26380,s2.lan,[::1]:26379/swarm-main/2?sentinel_password=s3nt"
    assert parse_sentinel_url(url) == SentinelTarget(
        sentinels=(("s1.lan", 26380), ("s2.lan", 26379), ("::1", 26379)),
        service="swarm-main",
        db=2,
        username="app",
        password="p@ss",
        sentinel_password="s3nt",
    )
    assert parse_sentinel_url("redis+sentinel://127.0.0.1:26379/swarm").db == 0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel:///swarm", "at least one Sentinel"),
        ("redis+sentinel://h:26379", "/SERVICE"),
        ("redis+sentinel://h:26379/swarm/0/extra", "/SERVICE"),
        ("redis+sentinel://h:26379/swarm/zero", "must be a number"),
        ("redis+sentinel://h:99999/swarm", "not HOST:PORT"),
        ("redis+sentinel://h:26379/swarm?socket_timeout=1", "unknown"),
        ("http://127.0.0.1:6379/0", "redis+sentinel://"),
        ("127.0.0.1:6379", "redis+sentinel://"),
    ],
)
def test_a_bad_redis_url_is_refused_naming_the_flag_without_its_password(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="--redis") as refused:
        CoordinatorConfig(redis_url=url.replace("://", "://:hunter2@", 1) if "://" in url else url)
    assert says in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.lan:6380/1", "unix:///run/redis.sock?db=0"]
)
def test_plain_urls_stay_accepted(url: str) -> None:
    check_redis_url(url)


def test_the_client_follows_a_failover_and_writes_wait_for_the_replica(tmp_path: Path) -> None:
    processes = LocalSwarm(log_dir=tmp_path)
    try:
        primary_port = free_port()
        processes.start_redis(tmp_path / "primary", port=primary_port)
        primary = processes.processes[-1]
        replica_port = processes.start_redis_replica(tmp_path / "replica", primary_port)
        replica = processes.processes[-1]
        url = processes.start_sentinels(tmp_path / "sentinels", primary_port, replicas=1)

        async def scenario() -> None:
            redis = await connect_redis(url)
            try:
                durable = DurableWrites.for_client(redis, timeout_ms=300)
                await redis.set("before", "kept")
                assert await durable.confirm(), "the in-sync replica did not acknowledge"

                # A request accepted waits for the replica: one that answers nothing holds it for the timeout.
                os.kill(replica.pid, signal.SIGSTOP)
                try:
                    store = RequestStore(redis, durable=durable)
                    started = time.monotonic()
                    await store.enqueue(GenerationRequest("r1", "m", "hello", 4, SamplingParams()))
                    assert time.monotonic() - started >= 0.25, "the request was accepted without waiting for WAIT"
                    await store.close()
                    started = time.monotonic()
                    assert not await durable.confirm()  # and later writes do not each pay the timeout
                    assert time.monotonic() - started < 0.2
                finally:
                    os.kill(replica.pid, signal.SIGCONT)

                primary.kill()
                deadline = time.monotonic() + 30
                while True:  # the same client, through Sentinel, reaches the promoted replica
                    try:
                        await redis.set("after", "written")
                        break
                    except RedisError as exc:
                        assert time.monotonic() < deadline, f"no primary after the failover: {exc}"
                        await asyncio.sleep(0.2)
                assert await redis.get("before") == "kept"
                info = await redis.info("server")
                assert int(info["tcp_port"]) == replica_port
            finally:
                await close_redis(redis)

        asyncio.run(scenario())
    finally:
        processes.stop()


def test_a_single_redis_pays_nothing_for_durability(redis_url: str) -> None:
    async def scenario() -> None:
        redis = await connect_redis(redis_url)
        try:
            durable = DurableWrites.for_client(redis)
            assert not await durable.confirm()
            assert await redis.exists("swarm:replication-fence") == 0, "a single Redis was sent the fence write"
        finally:
            await close_redis(redis)

    asyncio.run(scenario())
