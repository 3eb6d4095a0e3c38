"""`swarm join ... --install` and `swarm leave --uninstall`: the flags, and the service command line built from argv."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from swarm.cli.errors import fail
from swarm.cli.limit_flags import limits_from_args
from swarm.deploy.join_service import Scope, install, join_service, python_command, uninstall, unit_text
from swarm.worker.owner_hours import WhenMode, parse_owner_hours
from swarm.worker.owner_limits import KEPT_BY_ENV

# Flags of `swarm join` that install rather than join, so the service's own command line leaves them out.
INSTALL_FLAGS = ("--install", "--user", "--system", "--dry-run")
SECRET_FLAGS = ("--token",)  # travel in the service's env file instead


def add_install_flags(join: Any) -> None:
    join.add_argument(
        "--install",
        action="store_true",
        help="instead of joining now: write and enable a systemd service that joins with these flags at every boot",
    )
    _add_scope_flags(join)
    join.add_argument("--dry-run", action="store_true", help="with --install: print the unit, write nothing")


def add_uninstall_flags(leave: Any) -> None:
    leave.add_argument(
        "--uninstall", action="store_true", help="stop and remove the service `swarm join --install` wrote"
    )
    _add_scope_flags(leave)


def _add_scope_flags(p: Any) -> None:
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--user", dest="scope", action="store_const", const=Scope.USER, help="a per-user service (the default)"
    )
    scope.add_argument(
        "--system", dest="scope", action="store_const", const=Scope.SYSTEM, help="a system service (needs root)"
    )
    p.set_defaults(scope=Scope.USER)


def service_argv(argv: list[str]) -> list[str]:
    """argv without the install flags and the secrets (`--token X` or `--token=X`)."""
    kept: list[str] = []
    skip_value = False
    for word in argv:
        if skip_value:
            skip_value = False
        elif word in INSTALL_FLAGS or word.split("=", 1)[0] in SECRET_FLAGS:
            skip_value = word in SECRET_FLAGS
        else:
            kept.append(word)
    return kept


def cgroup_settings(args: argparse.Namespace) -> list[str]:
    """The unit's share of this PC: its --max-cpu/--max-memory, and the lowest CPU weight with --when idle
    (a service has no autogroup of its own to lower, as a worker started by hand does)."""
    limits = limits_from_args(args)
    settings = limits.systemd_properties(os.cpu_count() or 1)
    if limits.any:
        settings.append(f"Environment={KEPT_BY_ENV}=unit")  # the worker need not keep them itself
    if parse_owner_hours(args.when).mode is WhenMode.IDLE:
        settings.append("CPUWeight=idle")
    return settings


def run_install(args: argparse.Namespace) -> int:
    service = join_service(args.scope)
    env = {"SWARM_TOKEN": args.token} if args.token else {}
    if not args.coordinator and os.environ.get("SWARM_COORDINATOR"):
        env["SWARM_COORDINATOR"] = os.environ["SWARM_COORDINATOR"]
    command = [*python_command(), *service_argv(args.argv)]
    unit = unit_text(service, command, Path.cwd(), args.drain_timeout, cgroup_settings(args))
    if args.dry_run:
        print(f"# {service.unit_path} (--dry-run: not written)\n{unit}", end="")
        if env:
            print(f"# {service.env_path} would hold {', '.join(sorted(env))}")
        return 0
    try:
        said = install(service, unit, env)
    except OSError as exc:
        return fail("join", f"cannot install the service: {exc}")
    print("\n".join(said))
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    try:
        said = uninstall(join_service(args.scope))
    except OSError as exc:
        return fail("leave", f"cannot remove the service: {exc}")
    print("\n".join(said))
    return 0
