"""Starting a worker from `swarm join` flags: its config, its model file (local or downloaded), serving it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import uvloop

from swarm.cli.errors import fail
from swarm.cli.limit_flags import limits_from_args
from swarm.engine.llama_adapter import LlamaModel, ModelLoadError
from swarm.gguf_files.default_model import cache_dir, resolve_model
from swarm.gguf_files.stage_files import StageManifest
from swarm.shared.tls import TlsFiles
from swarm.worker.config import WorkerConfig
from swarm.worker.coordinators import UNREACHABLE, coordinator_list
from swarm.worker.draft_process import serve_draft
from swarm.worker.membership import JoinRefused
from swarm.worker.model_download import DownloadFailed, download_stage, fetch_manifest
from swarm.worker.owner_hours import parse_owner_hours
from swarm.worker.owner_limits import KeptBy
from swarm.worker.process import build_engine, serve_worker
from swarm.worker.stage_measuring import DecodeMeter
from swarm.worker.stage_process import build_stage, serve_stage


def join_config(
    args: argparse.Namespace, coordinator: str, tls: TlsFiles | None, model: Path, **assigned: Any
) -> WorkerConfig:
    """The worker's config from its flags; assigned overrides what a coordinator's plan decides."""
    limits = limits_from_args(args)
    fields: dict[str, Any] = dict(
        coordinator=coordinator,
        model_path=model,
        threads=limits.threads(args.threads, os.cpu_count() or 1),
        limits=limits,
        limits_kept_by=getattr(args, "limits_kept_by", KeptBy.NOTHING),
        slots=args.slots,
        context_per_slot=args.context,
        listen=args.listen,
        advertise=args.advertise,
        token=args.token,
        model_name=args.model_name,
        worker_id=args.worker_id,
        next_stage=args.next_stage,
        drain_timeout_s=args.drain_timeout,
        hidden_bfloat16=args.hidden_bfloat16,
        steps_in_flight=args.steps_in_flight,
        metrics=args.metrics,
        hours=parse_owner_hours(args.when),
        watts=args.watts,
        cost_per_hour=args.cost_per_hour,
        owner_cpu=args.owner_cpu,
        owner_quiet_s=args.owner_quiet,
        owner_memory=args.owner_memory,
        speculate=args.speculate in ("on", "always"),
        speculate_always=args.speculate == "always",
        draft_for=args.draft_for,
        draft_lookahead=args.draft_lookahead,
        first_token_pause_ms=args.first_token_pause_ms,
        tls=tls,
    )
    return WorkerConfig(**{**fields, **assigned})


def serve_model(config: WorkerConfig) -> tuple[int, bool]:
    """Serves config's model until stopped: (exit code, whether the coordinator's plan moved this worker)."""
    try:
        config.limits.check_model_fits(config.model_path)
        model = LlamaModel(config.model_path)
        if config.draft_for:  # a draft PC serves the workers of another model, not requests
            return serve_draft_model(config, model), False
        stage = model.stage
        meter = DecodeMeter() if stage is not None and stage.count > 1 else None  # a stage measures itself
        if stage is not None and stage.index > 0:  # a later stage serves the stage before it, not clients
            executor = build_stage(config, model, meter)
            return 0, uvloop.run(serve_stage(config, executor, meter))
        engine = build_engine(config, model, meter)
    except (ValueError, ModelLoadError, OSError) as exc:
        return fail("join", str(exc)), False
    engine.start()
    try:
        return 0, uvloop.run(serve_worker(config, engine, meter))
    except (JoinRefused, OSError) as exc:
        return fail("join", str(exc)), False
    finally:
        engine.stop()


def serve_draft_model(config: WorkerConfig, model: LlamaModel) -> int:
    try:
        uvloop.run(serve_draft(config, model))
    except (JoinRefused, OSError) as exc:
        return fail("join", str(exc))
    return 0


def model_path(spec: str, coordinators: str, token: str, tls: TlsFiles | None = None) -> Path:
    """A local GGUF path, 'default', or MODEL:STAGE fetched into the cache from the first coordinator that answers."""
    model, sep, stage_text = spec.rpartition(":")
    if not sep or not stage_text.isdigit() or Path(spec).exists():
        return resolve_model(spec)
    coordinator, manifest = first_manifest(coordinator_list(coordinators), model, token, tls)
    index = int(stage_text)
    if index >= len(manifest.stages):
        raise ValueError(f"--model {spec}: {model} has {len(manifest.stages)} stages (0-{len(manifest.stages) - 1})")
    return download_stage(coordinator, model, manifest.stages[index], cache_dir() / "downloads", token, tls=tls)


def first_manifest(
    coordinators: tuple[str, ...], model: str, token: str, tls: TlsFiles | None
) -> tuple[str, StageManifest]:
    """The first coordinator that serves model's stage manifest, and the manifest; an unreachable one is skipped."""
    for i, coordinator in enumerate(coordinators):
        try:
            return coordinator, fetch_manifest(coordinator, model, token, tls=tls)
        except DownloadFailed as exc:
            if exc.code not in {code.name for code in UNREACHABLE} or i == len(coordinators) - 1:
                raise
    raise ValueError("no coordinator address given")
