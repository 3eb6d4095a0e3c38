"""What every server process does the same way: bind its gRPC port, and stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

# gRPC sets SO_REUSEPORT by default: a second swarm process started on a port already in use would bind
# beside the first without a word, and the kernel would split connections between the two. Every swarm
# server takes its port alone, so a port in use is an error at start.
EXCLUSIVE_PORT = ("grpc.so_reuseport", 0)


async def start_listening(server: Any, address: str, credentials: Any = None) -> int:
    """Binds a grpc.aio server (made with EXCLUSIVE_PORT) to HOST:PORT (port 0: any free one), starts it,
    returns the port.

    With credentials (swarm.shared.tls.server_credentials) the port speaks TLS only."""
    try:
        if credentials is None:
            port = int(server.add_insecure_port(address))
        else:
            port = int(server.add_secure_port(address, credentials))
    except RuntimeError:  # grpc's "Failed to bind"
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {address}: the port is in use or the address is not this machine's")
    await server.start()
    return port


class StopEvent(asyncio.Event):
    """Set to wind down: by SIGTERM or SIGINT (then `by_signal`), or by the process itself (moved by a plan)."""

    by_signal = False

    def signalled(self) -> None:
        self.by_signal = True
        self.set()


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals() -> StopEvent:
    """An event set by SIGTERM or SIGINT, for the running event loop's process to wind down on."""
    stop = StopEvent()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.signalled)
    return stop


def stop_listening_for_signals() -> None:
    """Gives SIGTERM and SIGINT their usual effect back once the server has wound down. uvloop leaves its
    handler in place when its loop closes: a process that goes on without a loop (a spare `--auto` node
    waiting for work) would then ignore SIGTERM."""
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.remove_signal_handler(sig)
