"""The dashboard's pure logic: percentiles, chart samples, problems and the pipeline picture."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarm.coordinator.dashboard.snapshot import problems, snapshot_json
from swarm.coordinator.dashboard.timeseries import RATE_WINDOW_S, percentile, take_sample
from swarm.coordinator.metrics import CoordinatorMetrics, RequestOutcome
from swarm.shared.types import SwarmStatus, WorkerInfo, WorkerLoad, WorkerState, WorkerView

pytestmark = pytest.mark.timeout(10)


@dataclass(frozen=True)
class Dispatcher:
    """The dispatcher's totals, as the metrics read them."""

    failovers: int = 0
    failed: int = 0


def worker(worker_id: str, *, up: bool = True, stage: tuple[int, int, int, int] = (0, 0, 0, 0)) -> WorkerView:
    index, count, start, end = stage
    info = WorkerInfo(
        worker_id, f"10.0.0.1:{len(worker_id)}", "tiny", 512, 4, 1, "pc1",
        stage_index=index, stage_count=count, layer_start=start, layer_end=end,
    )  # fmt: skip
    state = WorkerState.UP if up else WorkerState.DOWN
    return WorkerView(info, WorkerLoad(slots_busy=1, tokens_per_second=12.5), state, heartbeat_age_s=0.5)


def outcome(at: float, status: str = "ok", duration: float = 1.0, ttft: float | None = 0.1) -> RequestOutcome:
    return RequestOutcome(at, status, duration, ttft)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0


def test_a_sample_counts_recent_requests_and_sums_live_workers() -> None:
    status = SwarmStatus([worker("a"), worker("b"), worker("c", up=False)], queue_depth=3, default_model="tiny")
    now = 1000.0
    outcomes = [
        outcome(now - 1, duration=1.0, ttft=0.1),
        outcome(now - 2, duration=3.0, ttft=0.3),
        outcome(now - 3, status="unavailable", duration=9.0, ttft=None),
        outcome(now - 30, duration=2.0, ttft=0.2),  # in the percentile window, not the rate window
        outcome(now - 600, duration=50.0, ttft=5.0),  # too old for either
    ]
    sample = take_sample(status, outcomes, now, unix_now=1.7e9)
    assert sample.queue_depth == 3
    assert sample.tokens_per_second == 25.0  # the down worker's last rate does not count
    assert sample.requests_per_second == 3 / RATE_WINDOW_S
    assert sample.errors_per_second == 1 / RATE_WINDOW_S
    assert sample.latency_p50_s == 2.0
    assert sample.latency_p95_s == 3.0
    assert sample.ttft_p50_s == 0.2


def test_problems_name_down_workers_unserved_models_and_a_growing_queue() -> None:
    status = SwarmStatus([worker("a", up=False)], queue_depth=7, default_model="tiny")
    quiet = take_sample(SwarmStatus([], 0, ""), [], 0.0, 0.0)
    busy = take_sample(status, [], 0.0, 0.0)
    found = problems(status, [quiet] * 31 + [busy])
    texts = [p["text"] for p in found]
    assert "no worker is up for model tiny" in texts
    assert any(t.startswith("worker a is down") for t in texts)
    assert any(t.startswith("queue growing: 7 waiting") for t in texts)
    assert {p["level"] for p in found} == {"error", "warning"}
    healthy = SwarmStatus([worker("a")], queue_depth=0, default_model="tiny")
    assert problems(healthy, [busy] * 40) == []


def test_pipelines_list_each_stage_with_its_layers_and_workers() -> None:
    status = SwarmStatus(
        [worker("whole"), worker("s0", stage=(0, 2, 0, 3)), worker("s1", up=False, stage=(1, 2, 3, 6))],
        queue_depth=0,
        default_model="tiny",
    )
    snapshot = snapshot_json(status, [], [], with_history=True)
    (model,) = snapshot["models"]
    assert model["replicas"] == [{"worker_id": "whole", "state": "up"}]
    (pipeline,) = model["pipelines"]
    assert pipeline["stage_count"] == 2
    assert [(s["layer_start"], s["layer_end"]) for s in pipeline["stages"]] == [(0, 3), (3, 6)]
    assert pipeline["stages"][1]["workers"] == [{"worker_id": "s1", "state": "down"}]
    assert snapshot["history"] == [] and snapshot["batch_jobs"] == []
    assert [w["serves"] for w in snapshot["workers"]] == ["whole model", "stage 1/2 L0-2", "stage 2/2 L3-5"]


def test_a_draining_worker_shows_as_draining_and_takes_no_requests() -> None:
    draining = replace(worker("leaving"), state=WorkerState.DRAINING)
    status = SwarmStatus([worker("staying"), draining], queue_depth=0, default_model="tiny")
    snapshot = snapshot_json(status, [], [], with_history=False)
    assert [w["state"] for w in snapshot["workers"]] == ["up", "draining"]
    assert snapshot["models"][0]["workers_up"] == 1
    assert snapshot["models"][0]["replicas"][1] == {"worker_id": "leaving", "state": "draining"}
    assert problems(status, []) == []  # leaving on purpose is no problem
    metrics = CoordinatorMetrics(Dispatcher())
    text = metrics.exposition(status).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("swarm_workers", (("state", "draining"),))] == 1
    assert samples[("swarm_workers", (("state", "up"),))] == 1
    assert samples[("swarm_model_workers_up", (("model", "tiny"),))] == 1


def test_a_draft_pc_shows_under_the_model_it_drafts_for_not_as_a_model() -> None:
    draft = worker("d")
    draft = replace(draft, info=replace(draft.info, model="small", draft_for="tiny"))
    status = SwarmStatus([worker("whole"), draft], queue_depth=0, default_model="tiny")
    snapshot = snapshot_json(status, [], [], with_history=False)
    (model,) = snapshot["models"]
    assert model["name"] == "tiny" and model["drafts"] == [{"worker_id": "d", "state": "up"}]
    assert model["replicas"] == [{"worker_id": "whole", "state": "up"}]
    assert [w["serves"] for w in snapshot["workers"]] == ["whole model", "draft for tiny"]
    assert problems(status, []) == []  # no "no worker is up for model small"
