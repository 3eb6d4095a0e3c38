"""`swarm up`: a whole swarm on this machine in one command (Redis, coordinators, workers), Ctrl-C stops it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from swarm.cli.config_defaults import default_of, default_port
from swarm.cli.tracing_flag import add_otlp_flag, otlp_args
from swarm.client import SwarmCallError, SwarmClient
from swarm.coordinator.config import CoordinatorConfig
from swarm.gguf_files.default_model import cache_dir, resolve_model
from swarm.gguf_files.stage_files import cached_split
from swarm.launch.local_swarm import LocalSwarm, ignore_stop_signals, interrupt_on_stop_signals, wait_until
from swarm.shared.redaction import redact_url
from swarm.worker.config import WorkerConfig

DEMO_PROMPT = "The three most useful things to know about the sea are"


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("up", help="run a coordinator, Redis and local workers on this machine")
    p.add_argument("--workers", type=int, default=2, help="local workers (default %(default)s)")
    p.add_argument(
        "--coordinators",
        type=int,
        default=1,
        help="active coordinators on the one Redis, on --port, --port + 1, ... (HTTP likewise; default %(default)s)",
    )
    p.add_argument("--model", default="default", help="GGUF path, or 'default' for Gemma 3 270M")
    p.add_argument(
        "--port",
        type=int,
        default=default_port(CoordinatorConfig, "listen"),
        help="coordinator gRPC port (default %(default)s)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=default_port(CoordinatorConfig, "http"),
        help="coordinator HTTP port (default %(default)s)",
    )
    p.add_argument("--redis", default="", help="use this Redis URL instead of starting a redis-server")
    p.add_argument("--threads", type=int, default=0, help="threads per worker (default: cores / workers)")
    p.add_argument(
        "--slots",
        type=int,
        default=default_of(WorkerConfig, "slots"),
        help="concurrent sequences per worker (default %(default)s)",
    )
    p.add_argument("--token", default="", help="join token (default: none, loopback only)")
    p.add_argument(
        "--speculate",
        choices=("on", "off", "always"),
        default="on" if default_of(WorkerConfig, "speculate") else "off",
        help="workers verify tokens proposed from each request's own context, as many as pay; always: every "
        "proposal, paying or not (default %(default)s)",
    )
    p.add_argument(
        "--stages",
        type=int,
        default=1,
        help="run the model as a pipeline of this many stages, one per worker (needs --workers = --stages)",
    )
    p.add_argument("--no-demo", action="store_true", help="skip the sample generation at start-up")
    add_otlp_flag(p)
    p.set_defaults(run=run_up)


def run_up(args: argparse.Namespace) -> int:
    if args.workers < 1:
        print("swarm up: error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.coordinators < 1:
        print("swarm up: error: --coordinators must be at least 1", file=sys.stderr)
        return 2
    if abs(args.port - args.http_port) < args.coordinators:
        print(
            f"swarm up: error: {args.coordinators} coordinators take --port {args.port} to "
            f"{args.port + args.coordinators - 1} and --http-port {args.http_port} to "
            f"{args.http_port + args.coordinators - 1}: the two ranges overlap; pick ports further apart",
            file=sys.stderr,
        )
        return 2
    if args.stages > 1 and args.stages != args.workers:
        print("swarm up: error: a pipeline of --stages K runs on exactly K workers: pass --workers K", file=sys.stderr)
        return 2
    threads = args.threads or max(1, (os.cpu_count() or 2) // args.workers)
    model = resolve_model(args.model)
    if not model.is_file():
        print(f"swarm up: error: model file not found: {model}", file=sys.stderr)
        return 2
    stage_files = cached_split(model, args.stages, cache_dir() / "stages") if args.stages > 1 else []
    addresses = [f"127.0.0.1:{args.port + i}" for i in range(args.coordinators)]
    http_ports = [args.http_port + i for i in range(args.coordinators)]
    address = addresses[0]
    swarm = LocalSwarm(log_dir=None, log_level=args.log_level)
    interrupt_on_stop_signals()
    try:
        if args.redis:
            swarm.redis_url = args.redis
        else:
            swarm.start_redis(cache_dir() / "redis")
        # Every process it starts has the same token and traces to the same collector.
        common_args = [*(["--token", args.token] if args.token else []), *otlp_args(args)]
        for i, (listen, http_port) in enumerate(zip(addresses, http_ports, strict=True)):
            swarm.start_coordinator(
                listen,
                f"127.0.0.1:{http_port}",
                *common_args,
                "--default-model",
                model.name.removesuffix(".gguf"),
                *(["--no-advertise"] if i > 0 else []),  # one mDNS answer per swarm: the first coordinator
                name="coordinator" if i == 0 else f"coordinator-{i}",
            )
        worker_args = ["--threads", str(threads), "--slots", str(args.slots), "--speculate", args.speculate]
        worker_args += common_args
        if stage_files:
            swarm.start_pipeline(",".join(addresses), stage_files, *worker_args)
        else:
            for i in range(args.workers):  # every address, each worker starting at the next: heartbeats spread
                rotated = addresses[i % len(addresses) :] + addresses[: i % len(addresses)]
                swarm.start_worker(",".join(rotated), model, *worker_args, name=f"worker-{i}")
        with SwarmClient(address) as client:
            wait_for_workers(swarm, client, args.workers)
            print_endpoints(addresses, http_ports, swarm.redis_url, args.workers, model)
            if not args.no_demo:
                demo(client)
        print("swarm is up; press Ctrl-C to stop it.", flush=True)
        while (dead := swarm.failed()) is None:
            time.sleep(0.5)
        print(
            f"swarm up: {dead.name} exited with code {dead.process.returncode if dead.process else '?'}; "
            "stopping everything",
            file=sys.stderr,
        )
        return 1
    except (FileNotFoundError, TimeoutError, SwarmCallError) as exc:
        print(f"swarm up: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        ignore_stop_signals()  # before saying so: a second Ctrl-C from then on must not cut the stop short
        print("\nstopping the swarm...", file=sys.stderr)
        return 0
    finally:
        ignore_stop_signals()
        swarm.stop()


def wait_for_workers(swarm: LocalSwarm, client: SwarmClient, count: int) -> None:
    def all_up() -> bool:
        dead = swarm.failed()
        if dead is not None:
            raise TimeoutError(f"{dead.name} exited during start-up (run with --log-level info to see why)")
        try:
            return sum(1 for w in client.status().workers if w.up) >= count
        except SwarmCallError:
            return False

    wait_until(all_up, 120, f"{count} workers to join")


def print_endpoints(addresses: list[str], http_ports: list[int], redis_url: str, workers: int, model: Path) -> None:
    lines = [f"swarm is running {workers} workers of {model.name}"]
    for address, http_port in zip(addresses, http_ports, strict=True):
        lines += [
            f"  gRPC   {address}   (swarm generate --coordinator {address} 'Hello')",
            f"  HTTP   http://127.0.0.1:{http_port}/   (the dashboard; also /status, /metrics, /v1)",
        ]
    print("\n".join([*lines, f"  Redis  {redact_url(redis_url)}"]), flush=True)


def demo(client: SwarmClient) -> None:
    print(f"\n> {DEMO_PROMPT}", end="", flush=True)
    for event in client.stream(DEMO_PROMPT, max_tokens=48, temperature=0.0):
        text = getattr(event, "text", "")
        print(text, end="", flush=True)
    print("\n", flush=True)
