"""`swarm join --max-cpu/--max-memory`: the flags and the OwnerLimits they give."""

from __future__ import annotations

import argparse
from typing import Any

from swarm.worker.owner_limits import OwnerLimits, parse_cpu_share, parse_memory_size


def add_limit_flags(join: Any) -> None:
    join.add_argument(
        "--max-cpu",
        default="100%",
        metavar="PERCENT",
        help="at most this share of all this PC's cores: kept by systemd (CPUQuota= in the --install unit, or a "
        "user scope when run from a desktop session), else by running fewer threads at nice 10 (default 100%%)",
    )
    join.add_argument(
        "--max-memory",
        default="",
        metavar="SIZE",
        help="at most this much memory, e.g. 4G: kept by systemd (MemoryHigh=/MemoryMax=); everywhere a model "
        "file larger than this is refused at start (default: no cap)",
    )


def limits_from_args(args: argparse.Namespace) -> OwnerLimits:
    """ValueError naming the flag for a bad value."""
    memory = parse_memory_size(args.max_memory) if args.max_memory else 0
    return OwnerLimits(parse_cpu_share(args.max_cpu), memory)
