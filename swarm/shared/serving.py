"""What every server process does the same way: bind its gRPC port, and stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from typing import Any


async def start_listening(server: Any, address: str, credentials: Any = None) -> int:
    """Binds a grpc.aio server to HOST:PORT (port 0: any free one), starts it, returns the port.

    With credentials (swarm.shared.tls.server_credentials) the port speaks TLS only."""
    if credentials is None:
        port = int(server.add_insecure_port(address))
    else:
        port = int(server.add_secure_port(address, credentials))
    if port == 0:
        raise OSError(f"cannot listen on {address}")
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
