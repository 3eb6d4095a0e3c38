"""`swarm ray up|down|status`: swarm workers as Ray actors on an existing Ray cluster."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from swarm.cli.config_defaults import default_of
from swarm.cli.errors import fail
from swarm.deploy.ray_fleet import RayFleetConfig, RayFleetError, fleet_down, fleet_status, fleet_up


def _default(name: str) -> Any:
    return default_of(RayFleetConfig, name)


def add_parsers(commands: Any) -> None:
    ray_parser = commands.add_parser("ray", help="run swarm workers as actors on a Ray cluster")
    actions = ray_parser.add_subparsers(dest="ray_command", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="place N workers (one per node unless --pack), each joining the coordinator")
    add_address(up)
    up.add_argument("--workers", type=int, required=True, help="how many worker actors")
    up.add_argument(
        "--threads",
        type=int,
        default=_default("threads"),
        help="llama.cpp threads = CPUs each actor reserves (default %(default)s)",
    )
    up.add_argument(
        "--slots", type=int, default=_default("slots"), help="concurrent sequences per worker (default %(default)s)"
    )
    up.add_argument(
        "--context", type=int, default=_default("context"), help="tokens per sequence (default %(default)s)"
    )
    up.add_argument("--model", default=_default("model"), help="GGUF path on every node, or 'default' (Gemma 3 270M)")
    up.add_argument(
        "--auto",
        action="store_true",
        help="instead of --model: each worker offers its node's memory and serves what the coordinator's plan "
        "(--plan-model) gives it, a whole replica or a pipeline stage on its own node",
    )
    up.add_argument("--memory", default=_default("memory"), help="with --auto: memory each worker offers, e.g. 6G")
    up.add_argument(
        "--coordinator",
        default=os.environ.get("SWARM_COORDINATOR", ""),
        help="coordinator HOST:PORT, several comma-separated, or dns:///NAME:PORT "
        "(default $SWARM_COORDINATOR, else each worker finds it on its LAN)",
    )
    up.add_argument("--token", default=os.environ.get("SWARM_TOKEN", ""), help="the swarm's join token ($SWARM_TOKEN)")
    up.add_argument(
        "--pack",
        action="store_true",
        default=_default("pack"),
        help="pack workers onto few nodes instead of one per node",
    )
    up.add_argument(
        "--listen-host", default=_default("listen_host"), help="address each worker listens on (default %(default)s)"
    )
    up.add_argument(
        "--advertise-host",
        default=_default("advertise_host"),
        help="address the coordinator dials (default: the node's Ray IP)",
    )
    up.set_defaults(run=run_up)

    down = actions.add_parser("down", help="drain and remove every swarm worker actor")
    add_address(down)
    down.set_defaults(run=run_down)

    status = actions.add_parser("status", help="list the swarm worker actors")
    add_address(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=run_status)


def add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS", "auto"),
        help="Ray cluster address, HOST:PORT or ray://HOST:PORT (default $RAY_ADDRESS or auto)",
    )


def run_up(args: argparse.Namespace) -> int:
    try:
        config = RayFleetConfig(
            ray_address=args.address,
            workers=args.workers,
            threads=args.threads,
            slots=args.slots,
            context=args.context,
            model=args.model,
            auto=args.auto,
            memory=args.memory,
            coordinator=args.coordinator,
            token=args.token,
            pack=args.pack,
            listen_host=args.listen_host,
            advertise_host=args.advertise_host,
        )
        names = fleet_up(config)
    except (ValueError, RayFleetError) as exc:
        return fail("ray", str(exc))
    print(f"{len(names)} swarm workers running on Ray: {', '.join(names)}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    try:
        names = fleet_down(args.address)
    except RayFleetError as exc:
        return fail("ray", str(exc))
    print(f"removed {len(names)} swarm workers" + (f": {', '.join(names)}" if names else ""))
    return 0


def run_status(args: argparse.Namespace) -> int:
    try:
        rows = fleet_status(args.address)
    except RayFleetError as exc:
        return fail("ray", str(exc))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no swarm workers on this Ray cluster")
    for row in rows:
        print(
            f"{row['name']:<18} {row['state']:<11} {row.get('address', '-'):<22} "
            f"{row.get('hostname', '-')} pid {row.get('worker_pid', '-')}"
        )
    return 0
