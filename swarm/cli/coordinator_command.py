"""`swarm coordinator`: build the coordinator's config from flags and run it (no llama.cpp in this process)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvloop

from swarm.cli.config_defaults import default_of
from swarm.cli.errors import fail
from swarm.cli.security_flags import add_api_key_flags, add_tls_flags, api_keys_from_args, tls_from_args
from swarm.cli.tracing_flag import add_otlp_flag
from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.process import serve_coordinator
from swarm.shared import tracing


def _default(name: str) -> Any:
    return default_of(CoordinatorConfig, name)


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("coordinator", help="run the coordinator (gRPC + HTTP, state in Redis)")
    p.add_argument("--listen", default=_default("listen"), help="gRPC HOST:PORT (default %(default)s)")
    p.add_argument("--http", default=_default("http"), help="HTTP HOST:PORT, empty to disable (default %(default)s)")
    p.add_argument(
        "--http-idle-timeout",
        type=float,
        default=_default("http_idle_timeout_s"),
        metavar="SECONDS",
        help="an HTTP connection sends its headers within this, and closes this long idle (default %(default)s)",
    )
    redis_url = _default("redis_url")
    p.add_argument(
        "--redis",
        default=os.environ.get("SWARM_REDIS", redis_url),
        help=f"Redis URL, or redis+sentinel://HOST:PORT,HOST:PORT/SERVICE/DB for a primary that Sentinels fail over "
        f"(default $SWARM_REDIS or {redis_url}; the environment keeps a password out of ps)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SWARM_TOKEN", _default("token")),
        help="join token workers must present ($SWARM_TOKEN)",
    )
    add_api_key_flags(p)
    add_tls_flags(p, serves=True)
    p.add_argument("--default-model", default=_default("default_model"), help="model used when a request names none")
    p.add_argument(
        "--stages-dir",
        default=_default("stages_dir"),
        help="serve the stage files of `swarm split` outputs in this folder",
    )
    p.add_argument(
        "--plan-model",
        default=_default("plan_model"),
        help="a GGUF (or 'default') to serve with `swarm join --auto` workers: whole replicas where one holds it, "
        "pipeline stages planned from their memory and speed where none does",
    )
    p.add_argument(
        "--plan-model-name", default=_default("plan_model_name"), help="the name clients use for --plan-model"
    )
    p.add_argument(
        "--plan-stages", type=int, default=_default("plan_stages"), help="always plan pipelines of this many stages"
    )
    p.add_argument(
        "--add-model",
        action="append",
        default=[],
        metavar="[NAME=]GGUF",
        help="another model the --auto workers serve, one per node, loaded when a request asks for it (repeatable)",
    )
    p.add_argument(
        "--pin-model",
        action="append",
        default=[],
        metavar="NAME",
        help="keep this planned model loaded: never evicted for another (repeatable)",
    )
    p.add_argument(
        "--model-residency",
        type=float,
        default=_default("model_residency_s"),
        help="seconds a node serves a model before it may be moved to another that is asked for",
    )
    p.add_argument(
        "--model-load-wait",
        type=float,
        default=_default("model_load_wait_s"),
        help="seconds a request for a planned model no node serves waits in the queue while a node loads it",
    )
    p.add_argument(
        "--no-advertise",
        dest="advertise",
        action="store_false",
        default=_default("advertise"),
        help="do not advertise this coordinator on the LAN over mDNS (_swarm._tcp.local.)",
    )
    p.add_argument(
        "--swarm-name",
        default=_default("swarm_name"),
        help="a name advertised with it, for LANs with several swarms (`swarm join --swarm-name`)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=_default("max_queue"),
        help="requests that may wait for a worker; beyond it clients get RESOURCE_EXHAUSTED (default %(default)s)",
    )
    p.add_argument(
        "--tenant-slot-share",
        type=float,
        default=_default("tenant_slot_share"),
        help="while several API keys have sent requests in the last 30 s, the most of a model's slots one key may "
        "hold (at least one); 1 lets it take all but the last free slot. Lower keeps other keys' first tokens "
        "quicker under a flood (a smaller decode batch) at the cost of slots left idle (default %(default)s)",
    )
    p.add_argument(
        "--no-worker-wait",
        type=float,
        default=_default("no_worker_wait_s"),
        metavar="SECONDS",
        help="how long a request waits for a worker of its model to appear (default %(default)s)",
    )
    p.add_argument(
        "--batch-reclaim-after",
        type=float,
        default=_default("batch_reclaim_after_s"),
        metavar="SECONDS",
        help="batch lines a coordinator has not touched this long are run by another (default %(default)s)",
    )
    add_otlp_flag(p)
    p.set_defaults(run=run_coordinator)


def coordinator_config(args: argparse.Namespace) -> CoordinatorConfig:
    """The config the flags describe; raises ValueError naming a bad flag."""
    return CoordinatorConfig(
        listen=args.listen,
        http=args.http,
        redis_url=args.redis,
        token=args.token,
        default_model=args.default_model,
        no_worker_wait_s=args.no_worker_wait,
        http_idle_timeout_s=args.http_idle_timeout,
        max_queue=args.max_queue,
        tenant_slot_share=args.tenant_slot_share,
        batch_reclaim_after_s=args.batch_reclaim_after,
        stages_dir=args.stages_dir,
        plan_model=args.plan_model,
        plan_model_name=args.plan_model_name,
        plan_stages=args.plan_stages,
        more_models=tuple(args.add_model),
        pinned_models=tuple(args.pin_model),
        model_residency_s=args.model_residency,
        model_load_wait_s=args.model_load_wait,
        tls=tls_from_args(args),
        api_keys=api_keys_from_args(args),
        advertise=args.advertise,
        swarm_name=args.swarm_name,
    )


def run_coordinator(args: argparse.Namespace) -> int:
    try:
        config = coordinator_config(args)
    except ValueError as exc:
        return fail("coordinator", str(exc))
    try:
        with tracing.on_for("swarm-coordinator", tracing.endpoint_from(args.otlp_endpoint)):
            uvloop.run(serve_coordinator(config))
    except (ConnectionError, OSError, ValueError) as exc:
        return fail("coordinator", str(exc))
    return 0
