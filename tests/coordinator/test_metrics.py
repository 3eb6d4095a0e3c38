"""The coordinator's /metrics, scraped from a real swarm before and after real requests."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarm.client import SwarmCallError
from swarm.launch.local_swarm import wait_until
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

pytestmark = pytest.mark.timeout(60)


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_counters_move_by_what_the_requests_did(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    model = swarm.model.name.removesuffix(".gguf")
    before = scrape(swarm.http)
    with swarm.client() as client:
        answers = [client.generate(p, max_tokens=n, temperature=0.0) for p, n in (("Hello", 8), ("Once", 13))]
        with pytest.raises(SwarmCallError):
            client.generate("Hello", max_tokens=4, top_p=2.0)
    after = scrape(swarm.http)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("swarm_requests_total", model=model, status="ok") == 2
    # A request refused before it has a model is counted, with no client text as its label.
    assert moved("swarm_requests_total", model=model, status="invalid_argument") == 1
    assert moved("swarm_generated_tokens_total", model=model) == sum(a.finished.completion_tokens for a in answers)
    assert moved("swarm_prompt_tokens_total", model=model) == sum(a.finished.prompt_tokens for a in answers)
    assert moved("swarm_time_to_first_token_seconds_count", model=model) == 2
    assert moved("swarm_request_duration_seconds_count", model=model) == 3
    assert value(after, "swarm_requests_in_progress") == 0


def test_swarm_state_is_read_at_scrape_time(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1, coordinator_args=("--no-worker-wait", "1"))
    (worker_id,) = swarm.up_workers()
    model = swarm.model.name.removesuffix(".gguf")
    # The load arrives with the first heartbeat after joining.
    wait_until(lambda: value(scrape(swarm.http), "swarm_worker_rss_bytes", worker=worker_id) > 0, 10, "a heartbeat")
    samples = scrape(swarm.http)
    assert value(samples, "swarm_worker_up", worker=worker_id, model=model, stage="whole") == 1
    assert value(samples, "swarm_worker_slots_total", worker=worker_id) == 4
    assert value(samples, "swarm_workers", state="up") == 1
    assert value(samples, "swarm_model_workers_up", model=model) == 1
    assert ("swarm_queue_depth", ()) in samples

    swarm.processes.processes[-1].kill()
    wait_until(lambda: value(scrape(swarm.http), "swarm_workers", state="down") == 1, 15, "the worker shown down")
    samples = scrape(swarm.http)
    assert value(samples, "swarm_worker_up", worker=worker_id, model=model, stage="whole") == 0
    assert value(samples, "swarm_model_workers_up", model=model) == 0
    assert value(samples, "swarm_dispatch_failures_total") == 0
    with swarm.client(retries=0) as client, pytest.raises(SwarmCallError):
        client.generate("Hello", max_tokens=4, model=model)  # queued, then failed: no worker came
    samples = scrape(swarm.http)
    assert value(samples, "swarm_dispatch_failures_total") == 1
    assert value(samples, "swarm_requests_total", model=model, status="unavailable") == 1
    assert ("swarm_failovers_total", ()) in samples  # 0 or 1: the dead worker may have been tried once
