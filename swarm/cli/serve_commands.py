"""`swarm coordinator` and `swarm join`: build a process config from flags and run that role."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import uvloop

from swarm.cli.auto_join import run_auto_join
from swarm.cli.errors import fail
from swarm.cli.security_flags import add_api_key_flags, add_tls_flags, api_keys_from_args, tls_from_args
from swarm.cli.worker_launch import join_config, model_path, serve_model
from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.process import serve_coordinator
from swarm.shared.discovery import DiscoveryError, discover_coordinator
from swarm.worker.model_download import DownloadFailed

log = logging.getLogger(__name__)


def add_coordinator_parser(commands: Any) -> None:
    p = commands.add_parser("coordinator", help="run the coordinator (gRPC + HTTP, state in Redis)")
    p.add_argument("--listen", default="0.0.0.0:50051", help="gRPC HOST:PORT (default %(default)s)")
    p.add_argument("--http", default="0.0.0.0:8080", help="HTTP HOST:PORT, empty to disable (default %(default)s)")
    p.add_argument(
        "--redis",
        default=os.environ.get("SWARM_REDIS", "redis://127.0.0.1:6379/0"),
        help="Redis URL (default $SWARM_REDIS or redis://127.0.0.1:6379/0; the environment keeps a password out of ps)",
    )
    p.add_argument(
        "--token", default=os.environ.get("SWARM_TOKEN", ""), help="join token workers must present ($SWARM_TOKEN)"
    )
    add_api_key_flags(p)
    add_tls_flags(p, serves=True)
    p.add_argument("--default-model", default="", help="model used when a request names none")
    p.add_argument("--stages-dir", default="", help="serve the stage files of `swarm split` outputs in this folder")
    p.add_argument(
        "--plan-model",
        default="",
        help="a GGUF (or 'default') to serve with `swarm join --auto` workers: whole replicas where one holds it, "
        "pipeline stages planned from their memory and speed where none does",
    )
    p.add_argument("--plan-model-name", default="", help="the name clients use for --plan-model")
    p.add_argument("--plan-stages", type=int, default=0, help="always plan pipelines of this many stages")
    p.add_argument(
        "--no-advertise",
        dest="advertise",
        action="store_false",
        help="do not advertise this coordinator on the LAN over mDNS (_swarm._tcp.local.)",
    )
    p.add_argument(
        "--swarm-name",
        default="",
        help="a name advertised with it, for LANs with several swarms (`swarm join --swarm-name`)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=10_000,
        help="requests that may wait for a worker; beyond it clients get RESOURCE_EXHAUSTED (default %(default)s)",
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
            max_queue=args.max_queue,
            batch_reclaim_after_s=args.batch_reclaim_after,
            stages_dir=args.stages_dir,
            plan_model=args.plan_model,
            plan_model_name=args.plan_model_name,
            plan_stages=args.plan_stages,
            tls=tls_from_args(args),
            api_keys=api_keys_from_args(args),
            advertise=args.advertise,
            swarm_name=args.swarm_name,
        )
    except ValueError as exc:
        return fail("coordinator", str(exc))
    try:
        uvloop.run(serve_coordinator(config))
    except (ConnectionError, OSError, ValueError) as exc:
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
        default="",
        help="path to a GGUF file, 'default' for Gemma 3 270M, or MODEL:STAGE to download stage STAGE (from 0) "
        "of a split model from the coordinator (see `swarm coordinator --stages-dir`)",
    )
    p.add_argument(
        "--auto",
        action="store_true",
        help="instead of --model: offer this PC's memory and speed and serve what the coordinator's plan assigns "
        "(a whole model or a pipeline stage; see `swarm coordinator --plan-model`)",
    )
    p.add_argument("--memory", default="", help="with --auto: memory to offer, e.g. 6G (default: 80%% of free RAM)")
    p.add_argument("--speed", type=float, default=0.0, help="with --auto: bytes/s to report (default: measured)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default %(default)s)")
    p.add_argument("--slots", type=int, default=8, help="concurrent sequences (default %(default)s)")
    p.add_argument("--context", type=int, default=2048, help="tokens per sequence (default %(default)s)")
    p.add_argument("--listen", default="0.0.0.0:0", help="worker gRPC HOST:PORT (default: any free port)")
    p.add_argument("--advertise", default="", help="HOST:PORT the coordinator should dial (default: derived)")
    p.add_argument(
        "--token", default=os.environ.get("SWARM_TOKEN", ""), help="the swarm's join token (default $SWARM_TOKEN)"
    )
    add_tls_flags(p, serves=True)
    p.add_argument("--model-name", default="", help="name clients use (default: file name without .gguf)")
    p.add_argument("--worker-id", default="", help="stable id (default: HOSTNAME-PORT)")
    p.add_argument(
        "--swarm-name", default="", help="without a coordinator address: join the coordinator advertising this name"
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="on leaving, seconds running requests may take to finish before the swarm resumes them elsewhere",
    )
    p.add_argument("--next-stage", default="", help="for a stage file from `swarm split`: HOST:PORT of the next stage")
    p.add_argument(
        "--hidden-bfloat16", action="store_true", help="a first stage: send hidden states as bfloat16 (half the bytes)"
    )
    p.add_argument("--metrics", default="", metavar="HOST:PORT", help="serve Prometheus metrics at /metrics here")
    p.set_defaults(run=run_join)


def run_join(args: argparse.Namespace) -> int:
    if bool(args.model) == bool(args.auto):
        return fail("join", "give either --model MODEL or --auto")
    try:
        coordinator = args.coordinator or os.environ.get("SWARM_COORDINATOR") or discover_coordinator(args.swarm_name)
        tls = tls_from_args(args)
        if args.auto:
            return run_auto_join(args, coordinator, tls)
        config = join_config(args, coordinator, tls, model_path(args.model, coordinator, args.token, tls))
    except (ValueError, OSError, DownloadFailed, DiscoveryError) as exc:
        return fail("join", str(exc))
    code, _ = serve_model(config)
    return code
