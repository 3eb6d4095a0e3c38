"""`swarm keys create|list|revoke`: API keys managed at run time through a coordinator's admin API (an admin key)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import grpc

from swarm.cli.errors import fail
from swarm.cli.security_flags import add_client_flags, client_api_key, tls_from_args
from swarm.client.failover import channel_options, coordinator_addresses
from swarm.shared.addresses import DEFAULT_COORDINATOR
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

CALL_TIMEOUT_S = 30.0
PRIORITY_NAMES = {0: "interactive", 1: "batch"}


def add_parsers(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys managed at run time: create, list, revoke (needs an admin key)")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key; prints its secret, shown this once")
    create.add_argument("name", help="a unique name: letters, digits, '.', '_', '-'")
    create.add_argument("--models", default="", help="comma-separated models the key may use (default: all)")
    create.add_argument("--expires", default="", help="YYYY-MM-DD (midnight UTC) or an ISO date-time (default: never)")
    create.add_argument("--tokens-per-minute", type=int, default=0, help="prompt + completion tokens (0: no limit)")
    create.add_argument("--requests-per-minute", type=int, default=0, help="new requests (0: no limit)")
    create.add_argument("--max-streams", type=int, default=0, help="concurrent streams (0: no limit)")
    create.add_argument("--priority", default="interactive", help="interactive (default), batch or a number")
    create.add_argument("--weight", type=float, default=1.0, help="share within its priority class (default 1)")
    create.add_argument("--admin", action="store_true", help="the key may manage keys and see the whole swarm")
    create.add_argument("--json", action="store_true", help="print JSON (the secret included)")
    create.set_defaults(run=run_create)

    listing = actions.add_parser("list", help="every created key with its limits (never a secret)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_list)

    revoke = actions.add_parser("revoke", help="refuse a key from its next call on, on every coordinator")
    revoke.add_argument("name")
    revoke.set_defaults(run=run_revoke)

    for action in (create, listing, revoke):
        action.add_argument(
            "--coordinator",
            default=None,
            help=f"coordinator HOST:PORT (default $SWARM_COORDINATOR or {DEFAULT_COORDINATOR})",
        )
        add_client_flags(action)


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    """method on the first coordinator that answers; raises grpc.RpcError from the last one tried."""
    addresses = coordinator_addresses(args.coordinator)
    tls = tls_from_args(args)
    metadata = bearer_metadata(client_api_key(args))
    unavailable: grpc.RpcError | None = None
    for address in addresses:
        with channel(address, tls, channel_options(address)) as opened:
            try:
                return getattr(pb_grpc.AdminStub(opened), method)(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                unavailable = exc
    raise unavailable or ValueError("--coordinator names no coordinator")


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    """Exit status 2 with one line: a bad flag (TLS files, an empty --coordinator) or the coordinator's refusal."""
    message = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.RpcError) else str(exc)
    return fail(f"keys {args.keys_command}", message)


def key_to_json(key: pb.ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "models": list(key.models),
        "expires": _when(key.expires_ms) if key.expires_ms else None,
        "tokens_per_minute": key.tokens_per_minute,
        "requests_per_minute": key.requests_per_minute,
        "max_streams": key.max_streams,
        "priority": PRIORITY_NAMES.get(key.priority, str(key.priority)),
        "weight": key.weight,
        "admin": key.admin,
        "revoked": key.revoked,
        "created": _when(key.created_ms),
    }


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def key_line(key: pb.ApiKey) -> str:
    data = key_to_json(key)
    limits = [
        f"{data[name]} {unit}"
        for name, unit in (
            ("tokens_per_minute", "tokens/min"),
            ("requests_per_minute", "requests/min"),
            ("max_streams", "streams"),
        )
        if data[name]
    ]
    parts = [
        data["name"],
        "REVOKED" if key.revoked else "admin" if key.admin else "key",
        f"models {','.join(data['models'])}" if data["models"] else "all models",
        ", ".join(limits) or "no limits",
        f"priority {data['priority']}",
        f"expires {data['expires']}" if data["expires"] else "no expiry",
    ]
    return "  ".join(parts)


def run_create(args: argparse.Namespace) -> int:
    for flag in ("tokens_per_minute", "requests_per_minute", "max_streams"):
        if getattr(args, flag) < 0:
            return fail("keys create", f"--{flag.replace('_', '-')} must be >= 0 (0: no limit)")
    request = pb.CreateKeyRequest(
        name=args.name,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        expires=args.expires,
        tokens_per_minute=args.tokens_per_minute,
        requests_per_minute=args.requests_per_minute,
        max_streams=args.max_streams,
        priority=args.priority,
        admin=args.admin,
        weight=args.weight,
    )
    try:
        answer = _call(args, "CreateKey", request)
    except (ValueError, grpc.RpcError) as exc:
        return _failed(args, exc)
    if args.json:
        print(json.dumps({**key_to_json(answer.key), "secret": answer.secret}, indent=2))
    else:
        print(f"created {key_line(answer.key)}", file=sys.stderr)
        print("the secret below is shown only now: the swarm keeps only its digest", file=sys.stderr)
        print(answer.secret)
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        keys = _call(args, "ListKeys", pb.ListKeysRequest()).keys
    except (ValueError, grpc.RpcError) as exc:
        return _failed(args, exc)
    if args.json:
        print(json.dumps([key_to_json(k) for k in keys], indent=2))
    else:
        print(
            "\n".join(key_line(k) for k in keys) if keys else "no keys created (static --api-key keys are not listed)"
        )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    try:
        key = _call(args, "RevokeKey", pb.RevokeKeyRequest(name=args.name))
    except (ValueError, grpc.RpcError) as exc:
        return _failed(args, exc)
    print(f"revoked {key.name}: every coordinator refuses it from its next call on", file=sys.stderr)
    return 0
