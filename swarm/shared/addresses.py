"""Host:port parsing and the address a peer should use to reach this process."""

from __future__ import annotations

import os
import socket

DEFAULT_COORDINATOR = "127.0.0.1:50051"


def default_coordinator() -> str:
    return os.environ.get("SWARM_COORDINATOR", DEFAULT_COORDINATOR)


def split_host_port(address: str) -> tuple[str, int]:
    """Parses HOST:PORT (IPv6 hosts in brackets); raises ValueError naming the problem."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {address!r}")
    return host.strip("[]") or "0.0.0.0", port


def reachable_host(peer: str) -> str:
    """The local IP address that routes to peer: what the peer should dial to reach us."""
    host, port = split_host_port(peer)
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, port or 9))  # UDP connect sends nothing; it only picks a route
            return str(probe.getsockname()[0])
        except OSError:
            return socket.gethostbyname(socket.gethostname())
