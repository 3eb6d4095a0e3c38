"""`swarm coordinator` and `swarm join`: build a process config from flags and run that role."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import uvloop

from swarm.cli.security_flags import add_api_key_flags, add_tls_flags, api_keys_from_args, tls_from_args
from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.process import serve_coordinator
from swarm.engine.llama_adapter import LlamaModel, ModelLoadError
from swarm.shared.default_model import cache_dir, resolve_model
from swarm.shared.discovery import DiscoveryError, discover_coordinator
from swarm.shared.tls import TlsFiles
from swarm.worker.config import WorkerConfig
from swarm.worker.membership import JoinRefused
from swarm.worker.model_download import DownloadFailed, download_stage, fetch_manifest
from swarm.worker.process import build_engine, serve_worker
from swarm.worker.stage_process import build_stage, serve_stage

log = logging.getLogger(__name__)


def fail(command: str, message: str) -> int:
    print(f"swarm {command}: error: {message}", file=sys.stderr)
    return 2


def add_coordinator_parser(commands: Any) -> None:
    p = commands.add_parser("coordinator", help="run the coordinator (gRPC + HTTP, state in Redis)")
    p.add_argument("--listen", default="0.0.0.0:50051", help="gRPC HOST:PORT (default %(default)s)")
    p.add_argument("--http", default="0.0.0.0:8080", help="HTTP HOST:PORT, empty to disable (default %(default)s)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL (default %(default)s)")
    p.add_argument("--token", default="", help="join token workers must present")
    add_api_key_flags(p)
    add_tls_flags(p, serves=True)
    p.add_argument("--default-model", default="", help="model used when a request names none")
    p.add_argument("--stages-dir", default="", help="serve the stage files of `swarm split` outputs in this folder")
    p.add_argument(
        "--no-advertise",
        dest="advertise",
        action="store_false",
        help="do not advertise this coordinator on the LAN over mDNS (_swarm._tcp.local.)",
    )
    p.add_argument(
        "--no-worker-wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a request waits for a worker of its model to appear (default %(default)s)",
    )
    p.add_argument(
        "--batch-reclaim-after",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="batch lines a coordinator has not touched this long are run by another (default %(default)s)",
    )
    p.set_defaults(run=run_coordinator)


def run_coordinator(args: argparse.Namespace) -> int:
    try:
        config = CoordinatorConfig(
            listen=args.listen,
            http=args.http,
            redis_url=args.redis,
            token=args.token,
            default_model=args.default_model,
            no_worker_wait_s=args.no_worker_wait,
            batch_reclaim_after_s=args.batch_reclaim_after,
            stages_dir=args.stages_dir,
            tls=tls_from_args(args),
            api_keys=api_keys_from_args(args),
            advertise=args.advertise,
        )
    except ValueError as exc:
        return fail("coordinator", str(exc))
    try:
        uvloop.run(serve_coordinator(config))
    except (ConnectionError, OSError) as exc:
        return fail("coordinator", str(exc))
    return 0


def add_join_parser(commands: Any) -> None:
    p = commands.add_parser("join", help="serve a model on this PC as a worker of a swarm")
    p.add_argument(
        "coordinator",
        nargs="?",
        default=None,
        help="coordinator HOST:PORT (default $SWARM_COORDINATOR, else the one found on the LAN over mDNS)",
    )
    p.add_argument(
        "--model",
        required=True,
        help="path to a GGUF file, 'default' for Gemma 3 270M, or MODEL:STAGE to download stage STAGE (from 0) "
        "of a split model from the coordinator (see `swarm coordinator --stages-dir`)",
    )
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default %(default)s)")
    p.add_argument("--slots", type=int, default=8, help="concurrent sequences (default %(default)s)")
    p.add_argument("--context", type=int, default=2048, help="tokens per sequence (default %(default)s)")
    p.add_argument("--listen", default="0.0.0.0:0", help="worker gRPC HOST:PORT (default: any free port)")
    p.add_argument("--advertise", default="", help="HOST:PORT the coordinator should dial (default: derived)")
    p.add_argument("--token", default="", help="the swarm's join token")
    add_tls_flags(p, serves=True)
    p.add_argument("--model-name", default="", help="name clients use (default: file name without .gguf)")
    p.add_argument("--worker-id", default="", help="stable id (default: HOSTNAME-PORT)")
    p.add_argument("--next-stage", default="", help="for a stage file from `swarm split`: HOST:PORT of the next stage")
    p.add_argument(
        "--hidden-bfloat16", action="store_true", help="a first stage: send hidden states as bfloat16 (half the bytes)"
    )
    p.add_argument("--metrics", default="", metavar="HOST:PORT", help="serve Prometheus metrics at /metrics here")
    p.set_defaults(run=run_join)


def run_join(args: argparse.Namespace) -> int:
    try:
        coordinator = args.coordinator or os.environ.get("SWARM_COORDINATOR") or discover_coordinator()
        tls = tls_from_args(args)
        config = WorkerConfig(
            coordinator=coordinator,
            model_path=model_path(args.model, coordinator, args.token, tls),
            threads=args.threads,
            slots=args.slots,
            context_per_slot=args.context,
            listen=args.listen,
            advertise=args.advertise,
            token=args.token,
            model_name=args.model_name,
            worker_id=args.worker_id,
            next_stage=args.next_stage,
            hidden_bfloat16=args.hidden_bfloat16,
            tls=tls,
            metrics=args.metrics,
        )
        model = LlamaModel(config.model_path)
        stage = model.stage
        if stage is not None and stage.index > 0:  # a later stage serves the stage before it, not clients
            executor = build_stage(config, model)
            uvloop.run(serve_stage(config, executor))
            return 0
        engine = build_engine(config, model)
    except (ValueError, ModelLoadError, OSError, DownloadFailed, DiscoveryError) as exc:
        return fail("join", str(exc))
    engine.start()
    try:
        uvloop.run(serve_worker(config, engine))
    except (JoinRefused, OSError) as exc:
        return fail("join", str(exc))
    finally:
        engine.stop()
    return 0


def model_path(spec: str, coordinator: str, token: str, tls: TlsFiles | None = None) -> Path:
    """A local GGUF path, 'default', or MODEL:STAGE fetched from the coordinator into the cache."""
    model, sep, stage_text = spec.rpartition(":")
    if not sep or not stage_text.isdigit() or Path(spec).exists():
        return resolve_model(spec)
    manifest = fetch_manifest(coordinator, model, token, tls=tls)
    index = int(stage_text)
    if index >= len(manifest.stages):
        raise ValueError(f"--model {spec}: {model} has {len(manifest.stages)} stages (0-{len(manifest.stages) - 1})")
    return download_stage(coordinator, model, manifest.stages[index], cache_dir() / "downloads", token, tls=tls)
