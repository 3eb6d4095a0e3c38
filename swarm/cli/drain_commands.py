"""`swarm drain WORKER` (an operator, anywhere) and `swarm leave` (a workstation owner): drain, then wait."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import Any

from swarm.cli.client_commands import open_client
from swarm.cli.security_flags import add_client_flags
from swarm.cli.service_flags import add_uninstall_flags, run_uninstall
from swarm.client import SwarmCallError, SwarmClient
from swarm.shared.addresses import DEFAULT_COORDINATOR


def add_parsers(commands: Any) -> None:
    coordinator_help = (
        "coordinator HOST:PORT, or several comma-separated to fail over between "
        f"(default $SWARM_COORDINATOR or {DEFAULT_COORDINATOR})"
    )
    d = commands.add_parser("drain", help="drain a worker: it takes nothing new, finishes its work and leaves")
    d.add_argument("worker_id", nargs="+", help="worker id(s), as `swarm status` shows them")
    leave = commands.add_parser("leave", help="take this PC's workers out of the swarm, finishing their work first")
    leave.add_argument(
        "--worker-id",
        action="append",
        default=[],
        help="only this worker (default: every worker whose host is this PC)",
    )
    for p in (d, leave):
        p.add_argument("--coordinator", default=None, help=coordinator_help)
        p.add_argument(
            "--token", default=os.environ.get("SWARM_TOKEN", ""), help="the swarm's join token ($SWARM_TOKEN)"
        )
        p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for them to leave (0: don't wait)")
        add_client_flags(p)
    add_uninstall_flags(leave)
    d.set_defaults(run=run_drain)
    leave.set_defaults(run=run_leave)


def run_drain(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        return _drain_and_wait(client, list(args.worker_id), args)


def run_leave(args: argparse.Namespace) -> int:
    if args.uninstall:
        return run_uninstall(args)  # stopping the service makes its worker drain and leave
    with open_client(args) as client:
        workers = list(args.worker_id)
        if not workers:
            try:
                status = client.status()
            except SwarmCallError as exc:
                print(f"swarm leave: cannot reach coordinator {','.join(client.addresses)}: {exc}", file=sys.stderr)
                return 1
            host = socket.gethostname()
            workers = [w.info.worker_id for w in status.workers if w.info.hostname == host and w.up]
            if not workers:
                print(f"swarm leave: no worker of this PC ({host}) is in the swarm", file=sys.stderr)
                return 1
        return _drain_and_wait(client, workers, args)


def _drain_and_wait(client: SwarmClient, workers: list[str], args: argparse.Namespace) -> int:
    for worker_id in workers:
        try:
            client.drain_worker(worker_id, args.token)
        except SwarmCallError as exc:
            print(f"swarm {args.command}: {worker_id}: {exc.details}", file=sys.stderr)
            return 1
        print(f"{worker_id}: draining")
    if args.wait == 0:
        return 0
    deadline = time.monotonic() + args.wait
    waiting = set(workers)
    while waiting and time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            present = {w.info.worker_id for w in client.status().workers if w.up}
        except SwarmCallError:
            continue  # the coordinator restarting: ask again
        for worker_id in sorted(waiting - present):
            print(f"{worker_id}: left")
        waiting &= present
    if waiting:
        print(f"swarm {args.command}: still draining after {args.wait:.0f} s: {', '.join(sorted(waiting))}")
        return 1
    return 0
