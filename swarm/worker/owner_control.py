"""The owner's control socket: a Unix socket on the worker's PC through which `swarm local`, `swarm pause` and
`swarm resume` ask the worker what it does, stop it taking work, and let it take work again.

A Unix socket, not a TCP port: no other machine can reach it, and its directory (mode 0700) and the
socket (0600) let only the user running the worker in. One JSON line each way: {"command": ...}, then
the worker's LocalStatus (or {"error": ...}).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

COMMANDS = ("status", "pause", "resume")
MAX_LINE = 4096
CALL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LocalStatus:
    """What a worker tells its owner: what it does now and what it used today."""

    worker_id: str
    model: str
    coordinator: str
    state: str  # "serving", "paused by its owner", "outside its hours", "leaving"
    when: str  # the owner's --when
    running: int
    slots: int
    tokens_today: int
    cpu_hours_today: float
    energy_wh_today: float  # 0 without --watts
    handed_back: int = 0  # a pause: running requests handed back to the coordinator to finish elsewhere
    threads: int = 0  # llama.cpp threads it runs now (fewer while its owner uses some of its cores)
    max_threads: int = 0  # what it runs on a quiet PC (--threads, within --max-cpu)
    limits: str = ""  # --max-cpu/--max-memory and what keeps them; "" without


@dataclass(frozen=True)
class OwnerActions:
    """What the socket may do to its worker."""

    status: Callable[[], LocalStatus]
    pause: Callable[[], int]  # returns how many running requests it handed back
    resume: Callable[[], None]


def default_control_dir() -> Path:
    """$SWARM_CONTROL_DIR, else ~/.cache/swarm/control: the same for a worker started by systemd (a user unit, or a
    system unit run as the owner) as for the owner's shell, where $XDG_RUNTIME_DIR may differ."""
    if chosen := os.environ.get("SWARM_CONTROL_DIR"):
        return Path(chosen)
    return Path.home() / ".cache" / "swarm" / "control"


@contextlib.asynccontextmanager
async def owner_socket(directory: Path, worker_id: str, actions: OwnerActions) -> AsyncIterator[Path | None]:
    """Serves the control socket DIRECTORY/WORKER_ID.sock while the body runs, then removes it.

    Yields None when the socket cannot be made (a read-only home, a path too long for a Unix socket):
    the worker serves on, and only its owner's controls are missing, which it logs.
    """
    path = directory / f"{worker_id}.sock"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.unlink(missing_ok=True)  # a worker of the same id that was killed left it behind
        server = await asyncio.start_unix_server(_answerer(actions), path, limit=MAX_LINE)
        path.chmod(0o600)
    except OSError as exc:
        log.warning("no owner controls (swarm local / pause / resume): cannot listen at %s: %s", path, exc)
        yield None
        return
    log.info("owner controls (swarm local / pause / resume) at %s", path)
    try:
        yield path
    finally:
        server.close()
        path.unlink(missing_ok=True)


def _answerer(
    actions: OwnerActions,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[None, None, None]]:

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), CALL_TIMEOUT_S)
            writer.write(json.dumps(_reply(line, actions)).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            log.debug("owner control call ended early: %r", exc)
        finally:
            writer.close()

    return answer


def _reply(line: bytes, actions: OwnerActions) -> dict[str, object]:
    try:
        command = json.loads(line).get("command")
    except (ValueError, AttributeError):
        command = None
    if command not in COMMANDS:
        return {"error": f"unknown command; use one of {', '.join(COMMANDS)}"}
    handed_back = 0
    if command == "pause":
        handed_back = actions.pause()
    elif command == "resume":
        actions.resume()
    status = actions.status()
    return asdict(status) | {"handed_back": handed_back}


def worker_sockets(directory: Path) -> Iterator[Path]:
    """The control sockets in directory, one per worker of this PC (some may be left by killed workers)."""
    if directory.is_dir():
        yield from sorted(p for p in directory.glob("*.sock") if p.is_socket())


def call_worker(path: Path, command: str) -> LocalStatus:
    """Sends command to the worker at path; OSError when no worker answers there, ValueError on a bad answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(CALL_TIMEOUT_S)
        connection.connect(str(path))
        connection.sendall(json.dumps({"command": command}).encode() + b"\n")
        answer = connection.makefile("rb").readline(MAX_LINE)
    reply = json.loads(answer)
    if not isinstance(reply, dict) or "error" in reply:
        raise ValueError(f"{path}: {reply.get('error') if isinstance(reply, dict) else reply!r}")
    return LocalStatus(**reply)
