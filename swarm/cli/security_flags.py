"""The security flags every command shares: TLS files (--tls-cert/--tls-key/--tls-ca) and API keys."""

from __future__ import annotations

import argparse
import os
from typing import Any

from swarm.coordinator.auth.api_keys import collect_api_keys
from swarm.shared.tls import TlsFiles


def add_tls_flags(parser: Any, serves: bool) -> None:
    """--tls-cert/--tls-key/--tls-ca; serves: the command runs a server, which presents the certificate."""
    what = "this process presents (server and client side)" if serves else "this client presents (mutual TLS)"
    parser.add_argument("--tls-cert", default=None, metavar="FILE", help=f"PEM certificate {what}")
    parser.add_argument("--tls-key", default=None, metavar="FILE", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--tls-ca",
        default=None,
        metavar="FILE",
        help="PEM CA that peers' certificates must be signed by"
        + ("; servers then require client certificates (mutual TLS)" if serves else " (default: system roots)"),
    )


def tls_from_args(args: argparse.Namespace) -> TlsFiles | None:
    """The TLS files the flags name, or None for plaintext; raises ValueError naming a bad flag."""
    return TlsFiles.from_flags(args.tls_cert, args.tls_key, args.tls_ca)


def add_api_key_flags(parser: Any) -> None:
    """The coordinator's client keys: --api-key (repeatable), --api-keys-file, and $SWARM_API_KEYS."""
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="an API key clients must present (repeatable; also $SWARM_API_KEYS, comma-separated)",
    )
    parser.add_argument(
        "--api-keys-file", default=None, metavar="FILE", help="API keys, one per line, '#' starts a comment"
    )


def api_keys_from_args(args: argparse.Namespace) -> tuple[str, ...]:
    return collect_api_keys(args.api_key, args.api_keys_file, os.environ.get("SWARM_API_KEYS"))


def add_client_flags(parser: Any) -> None:
    """A client command's --api-key and TLS flags."""
    parser.add_argument(
        "--api-key",
        default="",
        metavar="KEY",
        help="API key for a coordinator that requires one (default $SWARM_API_KEY)",
    )
    add_tls_flags(parser, serves=False)


def client_api_key(args: argparse.Namespace) -> str:
    return str(args.api_key or os.environ.get("SWARM_API_KEY", ""))
