"""The owner's control socket on a real Unix socket: only its user may open it, it answers the three commands,
refuses anything else, and is gone when the worker stops."""

from __future__ import annotations

import asyncio
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.worker.owner_control import LocalStatus, OwnerActions, call_worker, owner_socket, worker_sockets


@pytest.fixture
def control_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="swc-")) / "control"  # short: a socket path fits in 107 bytes
    yield directory
    shutil.rmtree(directory.parent, ignore_errors=True)


class FakeWorker:
    """Records what the owner asked (the socket is what is tested, not a worker)."""

    def __init__(self) -> None:
        self.paused = False

    def status(self) -> LocalStatus:
        state = "paused by its owner" if self.paused else "serving"
        return LocalStatus("w1", "tiny", "127.0.0.1:1", state, "always", 0, 4, 12, 0.5, 0.0)

    def pause(self) -> int:
        self.paused = True
        return 3

    def resume(self) -> None:
        self.paused = False


def test_the_socket_is_its_user_s_alone_answers_the_commands_and_goes_with_the_worker(control_dir: Path) -> None:
    worker = FakeWorker()

    async def scenario() -> Path:
        async with owner_socket(control_dir, "w1", OwnerActions(worker.status, worker.pause, worker.resume)) as path:
            assert path is not None
            assert stat.S_IMODE(control_dir.stat().st_mode) == 0o700
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert list(worker_sockets(control_dir)) == [path]
            paused = await asyncio.to_thread(call_worker, path, "pause")
            assert (paused.state, paused.handed_back) == ("paused by its owner", 3)
            assert (await asyncio.to_thread(call_worker, path, "status")).handed_back == 0
            assert (await asyncio.to_thread(call_worker, path, "resume")).state == "serving"
            with pytest.raises(ValueError, match="unknown command"):
                await asyncio.to_thread(call_worker, path, "shutdown")
            return path

    path = asyncio.run(scenario())
    assert not path.exists()
    with pytest.raises(OSError):
        call_worker(path, "status")


def test_a_worker_that_cannot_make_its_socket_serves_on_without_owner_controls(tmp_path: Path) -> None:
    too_long = tmp_path / ("d" * 120)  # longer than a Unix socket path may be

    async def scenario() -> Path | None:
        worker = FakeWorker()
        async with owner_socket(too_long, "w1", OwnerActions(worker.status, worker.pause, worker.resume)) as path:
            return path

    assert asyncio.run(scenario()) is None
