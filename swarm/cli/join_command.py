"""`swarm join`: serve a model (or what the coordinator's plan assigns) on this PC as a worker of a swarm."""

from __future__ import annotations

import argparse
import os
from typing import Any

from swarm.cli.auto_join import run_auto_join
from swarm.cli.config_defaults import default_of
from swarm.cli.errors import fail
from swarm.cli.limit_flags import add_limit_flags, limits_from_args
from swarm.cli.security_flags import add_tls_flags, tls_from_args
from swarm.cli.service_flags import add_install_flags, run_install
from swarm.cli.tracing_flag import add_otlp_flag
from swarm.cli.worker_launch import join_config, model_path, serve_model
from swarm.shared import tracing
from swarm.shared.discovery import DiscoveryError, discover_coordinator
from swarm.worker.config import WorkerConfig
from swarm.worker.model_download import DownloadFailed
from swarm.worker.owner_hours import parse_owner_hours
from swarm.worker.owner_limits import keep_limits


def _default(name: str) -> Any:
    return default_of(WorkerConfig, name)


def percent(text: str) -> float:
    """`30%` (or `30`) as 0.30."""
    try:
        return float(text.strip().removesuffix("%")) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage like 30%") from None


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("join", help="serve a model on this PC as a worker of a swarm")
    p.add_argument(
        "coordinator",
        nargs="?",
        default=None,
        help="coordinator HOST:PORT, several comma-separated (heartbeats move to the next when one is down) or "
        "dns:///NAME:PORT (default $SWARM_COORDINATOR, else the one found on the LAN over mDNS)",
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
    p.add_argument("--threads", type=int, default=_default("threads"), help="llama.cpp threads (default %(default)s)")
    p.add_argument("--slots", type=int, default=_default("slots"), help="concurrent sequences (default %(default)s)")
    p.add_argument(
        "--context", type=int, default=_default("context_per_slot"), help="tokens per sequence (default %(default)s)"
    )
    p.add_argument("--listen", default=_default("listen"), help="worker gRPC HOST:PORT (default: any free port)")
    p.add_argument(
        "--advertise", default=_default("advertise"), help="HOST:PORT the coordinator should dial (default: derived)"
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SWARM_TOKEN", _default("token")),
        help="the swarm's join token (default $SWARM_TOKEN)",
    )
    add_tls_flags(p, serves=True)
    p.add_argument(
        "--model-name", default=_default("model_name"), help="name clients use (default: file name without .gguf)"
    )
    p.add_argument("--worker-id", default=_default("worker_id"), help="stable id (default: HOSTNAME-PORT)")
    p.add_argument(
        "--swarm-name", default="", help="without a coordinator address: join the coordinator advertising this name"
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=_default("drain_timeout_s"),
        help="on leaving, seconds running requests may take to finish before the swarm resumes them elsewhere",
    )
    p.add_argument(
        "--next-stage",
        default=_default("next_stage"),
        help="for a stage file from `swarm split`: HOST:PORT of the next stage",
    )
    p.add_argument(
        "--hidden-bfloat16",
        action="store_true",
        default=_default("hidden_bfloat16"),
        help="a first stage: send hidden states as bfloat16 (half the bytes)",
    )
    p.add_argument(
        "--steps-in-flight",
        type=int,
        default=_default("steps_in_flight"),
        help="a first stage: groups of streams in the pipeline at once (0: up to one per stage, as many as "
        "measured step times say are fastest; 1: lock-step; N: always N)",
    )
    p.add_argument(
        "--metrics",
        default=_default("metrics"),
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics at /metrics here; a bare PORT listens on 127.0.0.1 only",
    )
    p.add_argument(
        "--when",
        default=_default("hours").text,
        help='when this PC\'s owner lets it take work: "always", "idle" (runs at idle priority, and while other '
        "processes use its cores past --owner-cpu or memory is short it takes nothing new and hands what it "
        "runs to other workers, until the PC has been quiet for --owner-quiet) or day/hour rules such as "
        '"mon-fri 19:00-07:00, sat-sun" (local time; a range past midnight belongs to the day it starts on). '
        "Outside them it finishes what it runs and takes nothing new (default %(default)s)",
    )
    p.add_argument(
        "--owner-cpu",
        type=percent,
        default=_default("owner_cpu"),
        metavar="PERCENT",
        help="with --when idle: the owner counts as busy when other processes use more than this share of the "
        "worker's cores (default 30%%)",
    )
    p.add_argument(
        "--owner-memory",
        type=percent,
        default=_default("owner_memory"),
        metavar="PERCENT",
        help="with --when idle: memory counts as short while less than this share of RAM is available; the "
        "worker then also frees its model until the PC has been quiet for --owner-quiet (default 10%%)",
    )
    p.add_argument(
        "--owner-quiet",
        type=float,
        default=_default("owner_quiet_s"),
        metavar="SECONDS",
        help="with --when idle: how long the PC must be quiet before the worker serves again (default %(default)s)",
    )
    add_limit_flags(p)
    p.add_argument(
        "--watts",
        type=float,
        default=_default("watts"),
        help="what this PC draws beyond idle while the worker is busy, so `swarm local` can estimate energy used "
        "and the coordinator energy per token",
    )
    p.add_argument(
        "--cost-per-hour",
        type=float,
        default=_default("cost_per_hour"),
        help="what an hour of this PC busy costs (any currency), for the coordinator's cost per million tokens",
    )
    p.add_argument(
        "--speculate",
        choices=("on", "off", "always"),
        default="on" if _default("speculate") else "off",
        help="a whole-model worker (or a pipeline's first stage) verifies tokens proposed from each request's own "
        "context (prompt lookup) in its batched step, as many as pay: several tokens per step where the answer "
        "repeats its prompt, the same tokens as without; always: verify every proposal, paying or not, to "
        "measure what proposals would be accepted (default %(default)s)",
    )
    p.add_argument(
        "--first-token-pause-ms",
        type=float,
        default=_default("first_token_pause_ms"),
        metavar="MS",
        help="after a step that gives a request its first token, wait this long before the next step (ended "
        "early by new work, at most a tenth of the time), so the processes carrying the token to the client "
        "get the cores; only when the worker's threads take every core it may use; 0: never "
        "(default %(default)s)",
    )
    p.add_argument(
        "--draft-for",
        default="",
        metavar="MODEL",
        help="join as a draft PC for MODEL's workers instead of serving requests: --model is a small model with "
        "MODEL's vocabulary, run ahead of each of their sequences; they verify its guesses as speculation "
        "(the same text, fewer steps when it guesses well; see the README's 'A draft PC')",
    )
    p.add_argument(
        "--draft-lookahead",
        type=int,
        default=8,
        help="with --draft-for: tokens guessed ahead of each sequence (default %(default)s)",
    )
    add_otlp_flag(p)
    add_install_flags(p)
    p.set_defaults(run=run_join)


def run_join(args: argparse.Namespace) -> int:
    if bool(args.model) == bool(args.auto):
        return fail("join", "give either --model MODEL or --auto")
    try:
        parse_owner_hours(args.when)  # a bad schedule fails now: not after an assignment, nor at every boot
        limits = limits_from_args(args)
    except ValueError as exc:
        return fail("join", str(exc))
    if args.install:
        return run_install(args)
    args.limits_kept_by = keep_limits(limits, args.argv)  # may run `swarm join` again in a systemd scope
    with tracing.on_for("swarm-worker", tracing.endpoint_from(args.otlp_endpoint)):
        return _join(args)


def _join(args: argparse.Namespace) -> int:
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
