"""`swarm certs init`: creates a private CA and node certificates for a TLS swarm, and says where they go."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from swarm.shared.certificates import CertificatesExist, init_certificates


def add_parsers(commands: Any) -> None:
    certs = commands.add_parser("certs", help="TLS certificates for the swarm")
    actions = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="create a CA and node certificates signed by it")
    init.add_argument("--out", required=True, help="folder for ca.pem, ca-key.pem and the node certificates")
    init.add_argument(
        "--hosts",
        default="",
        help="comma-separated host names and IP addresses the nodes are reached by "
        "(localhost, 127.0.0.1 and ::1 are always included)",
    )
    init.add_argument("--nodes", type=int, default=1, help="how many node certificates (default %(default)s)")
    init.add_argument("--force", action="store_true", help="replace certificates already in --out")
    init.set_defaults(run=run_init)


def run_init(args: argparse.Namespace) -> int:
    out = Path(args.out)
    hosts = [h for h in args.hosts.split(",") if h.strip()]
    try:
        issued = init_certificates(out, hosts, args.nodes, args.force)
    except (CertificatesExist, ValueError, OSError) as exc:
        print(f"swarm certs init: error: {exc}", file=sys.stderr)
        return 2
    ca = issued.ca_cert
    cert, key = issued.nodes[0]
    lines = [
        f"created a CA and {len(issued.nodes)} node certificate(s) in {out} for {', '.join(issued.hosts)}",
        f"  {issued.ca_key}: the CA's private key; keep it off the swarm's PCs (it signs new certificates)",
        f"  {ca}: copy to every PC and client",
    ]
    lines += [f"  {c} + {k}: one PC's certificate and key (key mode 0600)" for c, k in issued.nodes]
    lines += [
        "then, on each PC (mutual TLS: every side checks the other against the CA):",
        f"  swarm coordinator ... --tls-cert {cert} --tls-key {key} --tls-ca {ca}",
        f"  swarm join COORDINATOR:50051 ... --tls-cert {cert} --tls-key {key} --tls-ca {ca}",
        f"  swarm status --coordinator COORDINATOR:50051 --tls-cert {cert} --tls-key {key} --tls-ca {ca}",
        "workers are dialled at the address they advertise: it must be one of the hosts above (--hosts).",
    ]
    print("\n".join(lines))
    return 0
