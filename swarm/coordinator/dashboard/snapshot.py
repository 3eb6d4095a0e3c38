"""The JSON the dashboard draws: workers, pipelines per model, problems, chart samples and batch jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from swarm.coordinator.dashboard.batch_jobs import BatchJobView
from swarm.coordinator.dashboard.timeseries import Sample
from swarm.shared.types import SwarmStatus, WorkerState, WorkerView

QUEUE_TREND_SAMPLES = 30  # the queue is "growing" when it is longer now than this many samples ago
BATCH_JOBS_SHOWN = 20  # the newest; `swarm batch list` has them all


def _worker_json(view: WorkerView) -> dict[str, Any]:
    info, load = view.info, view.load
    return {
        "worker_id": info.worker_id,
        "host": info.hostname or info.address.rsplit(":", 1)[0],
        "address": info.address,
        "model": info.model,
        "serves": "whole model" if info.stage_count == 0 and not info.draft_for else info.role,
        "stage_index": info.stage_index,
        "stage_count": info.stage_count,
        "layer_start": info.layer_start,
        "layer_end": info.layer_end,
        "state": view.state.value,
        "away": load.away,
        "slots_busy": load.slots_busy,
        "slots": info.slots,
        "tokens_per_second": round(load.tokens_per_second, 2),
        "rss_bytes": load.rss_bytes,
        "heartbeat_age_s": round(view.heartbeat_age_s, 1),
    }


def _member(view: WorkerView) -> dict[str, str]:
    return {"worker_id": view.info.worker_id, "state": view.state.value}


def _models_json(status: SwarmStatus) -> list[dict[str, Any]]:
    """Per model: its whole replicas, its pipelines as stages with their layers and workers, and its drafts
    (a draft PC is listed under the model it drafts for, not as a model of its own)."""
    serving = [w for w in status.workers if not w.info.draft_for]
    names = sorted({w.info.model for w in serving} | ({status.default_model} - {""}))
    models = []
    for name in names:
        mine = [w for w in serving if w.info.model == name]
        pipelines = []
        for count in sorted({w.info.stage_count for w in mine} - {0}):
            stages = []
            for index in range(count):
                serving = [w for w in mine if w.info.stage_count == count and w.info.stage_index == index]
                layers = sorted({(w.info.layer_start, w.info.layer_end) for w in serving})
                stages.append(
                    {
                        "index": index,
                        "layer_start": layers[0][0] if layers else None,
                        "layer_end": layers[0][1] if layers else None,
                        "workers": [_member(w) for w in serving],
                    }
                )
            pipelines.append({"stage_count": count, "stages": stages})
        models.append(
            {
                "name": name,
                "is_default": name == status.default_model,
                "workers_up": sum(1 for w in mine if w.state is WorkerState.UP and w.info.takes_requests),
                "replicas": [_member(w) for w in mine if w.info.stage_count == 0],
                "pipelines": pipelines,
                "drafts": [_member(w) for w in status.workers if w.info.draft_for == name],
            }
        )
    return models


def problems(status: SwarmStatus, samples: Sequence[Sample]) -> list[dict[str, str]]:
    """What an operator must look at now, worst first."""
    found: list[dict[str, str]] = []
    if not status.workers:
        found.append({"level": "error", "text": "no worker has joined the swarm"})
    for model in _models_json(status):
        if model["workers_up"] == 0 and (status.workers or model["is_default"]):
            found.append({"level": "error", "text": f"no worker is up for model {model['name']}"})
    for w in status.workers:
        if not w.up:
            age = f"{w.heartbeat_age_s:.0f} s ago" if w.heartbeat_age_s >= 0 else "never"
            found.append({"level": "error", "text": f"worker {w.info.worker_id} is down (last heartbeat {age})"})
    if len(samples) > QUEUE_TREND_SAMPLES:
        before = samples[-QUEUE_TREND_SAMPLES - 1].queue_depth
        now = samples[-1].queue_depth
        if now > before:
            found.append(
                {
                    "level": "warning",
                    "text": f"queue growing: {now} waiting, {now - before} more than {QUEUE_TREND_SAMPLES} s ago",
                }
            )
    return found


def _batch_job_json(job: BatchJobView) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "state": str(job.state),
        "model": job.model,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
    }


def snapshot_json(
    status: SwarmStatus, samples: Sequence[Sample], batch_jobs: Sequence[BatchJobView], *, with_history: bool
) -> dict[str, Any]:
    """One server-sent event's data; the first of a connection carries the whole chart history."""
    snapshot: dict[str, Any] = {
        "default_model": status.default_model,
        "queue_depth": status.queue_depth,
        "workers": [_worker_json(w) for w in status.workers],
        "models": _models_json(status),
        "problems": problems(status, samples),
        "sample": asdict(samples[-1]) if samples else None,
        "batch_jobs": [_batch_job_json(job) for job in batch_jobs[:BATCH_JOBS_SHOWN]],
    }
    if with_history:
        snapshot["history"] = [asdict(s) for s in samples]
    return snapshot
