"""`swarm` entry point: parses arguments, sets up logging and runs one sub-command.

Each command's module is imported only when that command runs, so the coordinator process never
loads llama.cpp or the benchmarks, and client commands start quickly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandModule:
    """A module that adds the parsers of `names` with its add_parsers(commands)."""

    module: str
    names: tuple[str, ...]
    register: str = "add_parsers"


COMMAND_MODULES = (
    CommandModule("swarm.cli.coordinator_command", ("coordinator",)),
    CommandModule("swarm.cli.join_command", ("join",)),
    CommandModule("swarm.cli.up_command", ("up",)),
    CommandModule("swarm.cli.client_commands", ("generate", "status", "models", "top")),
    CommandModule("swarm.cli.drain_commands", ("drain", "leave")),
    CommandModule("swarm.cli.owner_commands", ("local", "pause", "resume")),
    CommandModule("swarm.cli.batch_commands", ("batch",)),
    CommandModule("swarm.cli.keys_commands", ("keys",)),
    CommandModule("swarm.cli.split_command", ("split",)),
    CommandModule("swarm.cli.certs_command", ("certs",)),
    CommandModule("swarm.bench.engine_vs_bare", ("bench",), register="add_parser"),
    CommandModule("swarm.bench.first_token", ("bench-first-token",)),
    CommandModule("swarm.cli.ray_commands", ("ray",)),
)


def _global_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def chosen_command(argv: list[str]) -> str | None:
    """The command argv names, if it names a known one before any help flag."""
    leading = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    _global_flags(leading)
    try:
        _, rest = leading.parse_known_args(argv)
    except argparse.ArgumentError:
        return None  # the full parser reports it
    first = rest[0] if rest else ""
    return first if any(first in m.names for m in COMMAND_MODULES) else None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, when argv names one, of that command's module only."""
    parser = argparse.ArgumentParser(prog="swarm", description="LLM inference on fleets of ordinary CPUs.")
    _global_flags(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = chosen_command(argv) if argv is not None else None
    for command_module in COMMAND_MODULES:
        if chosen is None or chosen in command_module.names:
            getattr(importlib.import_module(command_module.module), command_module.register)(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    args.argv = argv  # what `swarm join --install` writes into its service
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A command started in the background from a script inherits SIGINT ignored (bash does that to
    # background jobs); Ctrl-C and kill -INT must still stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code
