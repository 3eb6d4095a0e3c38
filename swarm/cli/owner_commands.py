"""`swarm local`, `swarm pause`, `swarm resume`: the PC's owner sees and controls the workers running on it.

They talk to each worker's control socket on this PC (swarm.worker.owner_control), never over the network.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from swarm.worker.owner_control import LocalStatus, call_worker, default_control_dir, worker_sockets

HELP = {
    "local": "show what this PC's workers are doing and what they used today",
    "pause": "stop this PC's workers taking work now; their running requests finish on other workers",
    "resume": "let this PC's paused workers take work again",
}


def add_parsers(commands: Any) -> None:
    for name, text in HELP.items():
        p = commands.add_parser(name, help=text)
        p.add_argument("--worker-id", action="append", default=[], help="only this worker (default: all on this PC)")
        p.set_defaults(run=run_owner_command)


def run_owner_command(args: argparse.Namespace) -> int:
    directory = default_control_dir()
    command = "status" if args.command == "local" else args.command
    answered = 0
    for path in worker_sockets(directory):
        if args.worker_id and path.stem not in args.worker_id:
            continue
        try:
            status = call_worker(path, command)
        except OSError:
            continue  # a socket left behind by a worker that was killed
        except ValueError as exc:
            print(f"swarm {args.command}: {exc}", file=sys.stderr)
            return 1
        answered += 1
        print(describe(status, args.command))
    if not answered:
        print(f"swarm {args.command}: no worker is running on this PC (looked in {directory})", file=sys.stderr)
        return 1
    return 0


def describe(status: LocalStatus, command: str) -> str:
    if command == "pause":
        return f"{status.worker_id}: {status.state}; {status.handed_back} running requests handed to other workers"
    if command == "resume":
        return f"{status.worker_id}: {status.state}"
    energy = f", about {status.energy_wh_today:.0f} Wh" if status.energy_wh_today else ""
    return "\n".join(
        (
            f"{status.worker_id}: {status.state} (--when {status.when}), model {status.model}, "
            f"coordinator {status.coordinator}",
            f"  running {status.running} of {status.slots} slots on {status.threads} of {status.max_threads} threads",
            *([f"  limits: {status.limits}"] if status.limits else []),
            f"  today: {status.tokens_today} tokens generated, {status.cpu_hours_today:.2f} CPU hours{energy}",
        )
    )
