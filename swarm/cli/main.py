"""`swarm` entry point: parses arguments, sets up logging and runs one sub-command."""

from __future__ import annotations

import argparse
import logging
import sys

from swarm.bench import engine_vs_bare
from swarm.cli import (
    certs_command,
    client_commands,
    drain_commands,
    ray_commands,
    serve_commands,
    split_command,
    up_command,
)
from swarm.cli.batch_commands import add_parser as add_batch_parser
from swarm.shared.addresses import DEFAULT_COORDINATOR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarm", description="LLM inference on fleets of ordinary CPUs.")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_commands.add_coordinator_parser(commands)
    serve_commands.add_join_parser(commands)
    up_command.add_parser(commands)
    client_commands.add_parsers(commands, DEFAULT_COORDINATOR)
    drain_commands.add_parsers(commands, DEFAULT_COORDINATOR)
    add_batch_parser(commands, DEFAULT_COORDINATOR)
    split_command.add_parser(commands)
    certs_command.add_parser(commands)
    engine_vs_bare.add_parser(commands)
    ray_commands.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code
