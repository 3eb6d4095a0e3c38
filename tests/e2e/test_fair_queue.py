"""Fair queuing end to end: a tenant flooding the swarm barely delays another tenant's requests."""

from __future__ import annotations

import asyncio
import logging

from swarm.bench.flood_and_quiet import FloodLoad, alone_and_flooded, first_token_seconds, p95
from tests.conftest import RunningSwarm

log = logging.getLogger(__name__)

PROMPTS = ["The quiet tenant asks", "A flood of requests", "Once upon a time", "Tell me about the sea"]
FLOOD_KEY, QUIET_KEY = "flood-secret", "quiet-secret"
SLACK_S = 0.5


def test_a_flooding_tenant_does_not_starve_a_quiet_one(make_swarm: object) -> None:
    swarm: RunningSwarm = make_swarm(  # type: ignore[operator]
        workers=1,
        coordinator_args=("--api-key", FLOOD_KEY, "--api-key", QUIET_KEY),
        client_options={"api_key": QUIET_KEY},
    )
    load = FloodLoad(
        swarm.address,
        FLOOD_KEY,
        QUIET_KEY,
        flood_outstanding=96,  # its 4 slots' worth running, the rest queued
        flood_max_tokens=48,
        quiet_requests=12,
        quiet_max_tokens=4,
    )
    arms = asyncio.run(alone_and_flooded(load, PROMPTS, settle_s=1.0))
    alone, flooded = first_token_seconds(arms.alone), first_token_seconds(arms.flooded)
    assert arms.flood_tokens_per_s > 0  # the flood ran beside the quiet requests
    log.info("quiet p95 alone %.3f s, under the flood %.3f s", p95(alone), p95(flooded))
    # The target is 1.5x; the slack allows for the flood's own decoding sharing the worker's one thread
    # (batched with the quiet request's prefill) and for a shared, noisy test machine. In arrival order
    # the quiet request waits behind the flood's queue: p95 about 5 s here against 0.015 s alone (and
    # 1.5 s with fair order but without the slot rule, 48 requests outstanding); with both, 0.03-0.3 s.
    assert p95(flooded) <= 1.5 * p95(alone) + SLACK_S, (sorted(alone), sorted(flooded))
