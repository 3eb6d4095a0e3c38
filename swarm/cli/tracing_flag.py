"""The --otlp-endpoint flag of the commands that run swarm processes: where their request spans go."""

from __future__ import annotations

import argparse

from swarm.shared.tracing import ENDPOINT_ENV


def add_otlp_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--otlp-endpoint",
        default="",
        metavar="URL",
        help=f"export request traces over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317 "
        f"(default ${ENDPOINT_ENV}; unset: tracing is off)",
    )


def otlp_args(args: argparse.Namespace) -> list[str]:
    """The flag again, for the processes a command starts."""
    return ["--otlp-endpoint", args.otlp_endpoint] if args.otlp_endpoint else []
