"""A worker's own /metrics (--metrics HOST:PORT), scraped from whole-model and pipeline-stage workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import free_port
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad
from swarm.worker.metrics import WorkerCollector, WorkerCounters, metrics_bind_address, serve_metrics
from tests.conftest import RunningSwarm
from tests.coordinator.test_metrics import scrape, value

MakeSwarm = Callable[..., RunningSwarm]

pytestmark = pytest.mark.timeout(60)


def test_a_worker_serves_its_own_metrics(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    metrics = f"127.0.0.1:{free_port()}"
    swarm.add_worker("--metrics", metrics, "--worker-id", "metered")
    swarm.wait_for_workers(1)
    before = scrape(metrics)
    assert (
        value(
            before, "swarm_worker_info", worker="metered", model=swarm.model.name.removesuffix(".gguf"), stage="whole"
        )
        == 1
    )
    with swarm.client() as client:
        answers = [client.generate("Hello there", max_tokens=n, temperature=0.0) for n in (5, 9)]
    after = scrape(metrics)
    generated = sum(a.finished.completion_tokens for a in answers)
    assert (
        value(after, "swarm_worker_generated_tokens_total") - value(before, "swarm_worker_generated_tokens_total")
        == generated
    )
    assert value(after, "swarm_worker_requests_total") - value(before, "swarm_worker_requests_total") == 2
    prompt = sum(a.finished.prompt_tokens for a in answers)
    assert (
        value(after, "swarm_worker_prompt_tokens_total") - value(before, "swarm_worker_prompt_tokens_total") == prompt
    )
    assert value(after, "swarm_worker_slots_total") == 4
    # Every generated token of a request took a step of its own: at least the longest request's count.
    steps = value(after, "swarm_worker_step_seconds_count") - value(before, "swarm_worker_step_seconds_count")
    assert steps >= max(a.finished.completion_tokens for a in answers)
    assert value(after, "swarm_worker_step_seconds_sum") > value(before, "swarm_worker_step_seconds_sum")
    assert value(after, "swarm_worker_rss_bytes") > 0


def test_a_later_pipeline_stage_serves_its_metrics(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    out = tmp_path / "four-2"
    manifest = split_model(write_tiny_llama(tmp_path / "four.gguf", seed=0, n_layer=4), 2, out)
    head_file, tail_file = (out / stage.file for stage in manifest.stages)
    swarm = make_swarm(workers=0)
    last, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    common = ("--threads", "1", "--slots", "2", "--context", "256")
    swarm.add_worker(
        *common, "--listen", last, "--metrics", metrics, "--worker-id", "tail", name="tail", model=tail_file
    )
    swarm.add_worker(*common, "--next-stage", last, name="head", model=head_file)
    swarm.wait_for_workers(2)
    samples = scrape(metrics)
    assert value(samples, "swarm_worker_info", worker="tail", model="four", stage="2/2") == 1
    assert value(samples, "swarm_worker_rss_bytes") > 0
    assert value(samples, "swarm_worker_slots_total") == 2


def test_a_bare_metrics_port_listens_on_loopback_only() -> None:
    assert metrics_bind_address("9100") == ("127.0.0.1", 9100)
    assert metrics_bind_address(":9100") == ("127.0.0.1", 9100)
    assert metrics_bind_address("0.0.0.0:9100") == ("0.0.0.0", 9100)
    info = WorkerInfo(WorkerId("w"), "127.0.0.1:1", "tiny", 512, 1, 1)

    async def listening_on(address: str) -> list[tuple[str, int]]:
        endpoint = await serve_metrics(address, WorkerCollector(info, lambda: WorkerCounters(WorkerLoad())))
        try:
            return endpoint.listening_on
        finally:
            await endpoint.close()

    port = free_port()
    assert asyncio.run(listening_on(str(port))) == [("127.0.0.1", port)]
    assert asyncio.run(listening_on(f"0.0.0.0:{port}")) == [("0.0.0.0", port)]
