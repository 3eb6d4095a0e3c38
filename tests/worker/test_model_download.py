"""Stage file download: a worker gets exactly its stage file over gRPC, checked, cached, resumed, never a stray path."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from swarm.coordinator.planning.model_files import ModelFilesServicer, StageLibrary, add_model_files_servicer
from swarm.gguf_files.stage_files import StageFile, StageManifest, split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.worker.model_download import CorruptDownload, DownloadFailed, download_stage

MODEL = "tiny"
CHUNK = 64 * 1024  # several chunks per stage file


class Coordinator:
    """A grpc.aio server on a free loopback port, run by an event loop in its own thread."""

    def __init__(self, register: Callable[[Any], object]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: Any = None
        self.address = self._run(self._start(register))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _start(self, register: Callable[[Any], object]) -> str:
        self._server = grpc.aio.server()
        register(self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return f"127.0.0.1:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._run(self._server.stop(None))
            self._server = None
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


class RecordingServicer(ModelFilesServicer):
    """Remembers each request's offset and counts the bytes it sent."""

    def __init__(self, library: StageLibrary) -> None:
        super().__init__(library, chunk_bytes=CHUNK)
        self.offsets: list[int] = []
        self.bytes_sent = 0

    async def Download(self, request: pb.DownloadRequest, context: Any) -> AsyncIterator[pb.FileChunk]:
        self.offsets.append(request.offset)
        async for chunk in super().Download(request, context):
            self.bytes_sent += len(chunk.data)
            yield chunk


class CorruptingServicer(ModelFilesServicer):
    """Flips one byte of the second chunk, as a bad disk or network could."""

    def __init__(self, library: StageLibrary) -> None:
        super().__init__(library, chunk_bytes=CHUNK)

    async def Download(self, request: pb.DownloadRequest, context: Any) -> AsyncIterator[pb.FileChunk]:
        async for chunk in super().Download(request, context):
            if chunk.offset == CHUNK:
                data = bytearray(chunk.data)
                data[10] ^= 0xFF
                chunk.data = bytes(data)
            yield chunk


class DroppingServicer(RecordingServicer):
    """Fails the first call with UNAVAILABLE after two chunks, as a coordinator restart would."""

    async def Download(self, request: pb.DownloadRequest, context: Any) -> AsyncIterator[pb.FileChunk]:
        sent = 0
        first = not self.offsets
        async for chunk in super().Download(request, context):
            yield chunk
            sent += 1
            if first and sent == 2:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "coordinator restarting")


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StageManifest]:
    """root/tiny/ holding the two stage files of a 4-layer tiny llama, and their manifest."""
    folder = tmp_path_factory.mktemp("models")
    model = write_tiny_llama(folder / "tiny.gguf", seed=0, n_layer=4)
    root = folder / "library"
    manifest = split_model(model, 2, root / MODEL)
    return root, manifest


@pytest.fixture
def library(stages: tuple[Path, StageManifest]) -> StageLibrary:
    return StageLibrary(stages[0])


@pytest.fixture
def stage1(stages: tuple[Path, StageManifest]) -> StageFile:
    return stages[1].stages[1]


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Any], object]], Coordinator]]:
    started: list[Coordinator] = []

    def start(register: Callable[[Any], object]) -> Coordinator:
        started.append(Coordinator(register))
        return started[-1]

    yield start
    for coordinator in started:
        coordinator.stop()


def with_servicer(servicer: ModelFilesServicer) -> Callable[[Any], object]:
    return lambda server: pb_grpc.add_ModelFilesServicer_to_server(servicer, server)


def cache_files(cache: Path) -> list[Path]:
    """Files in the cache, less the empty lock files that let workers on one PC share it."""
    return sorted(p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock")


def test_downloads_exactly_the_stage_file(
    serve: Any, library: StageLibrary, stages: tuple[Path, StageManifest], stage1: StageFile, tmp_path: Path
) -> None:
    servicer = RecordingServicer(library)
    coordinator = serve(with_servicer(servicer))
    path = download_stage(coordinator.address, MODEL, stage1, tmp_path / "cache", progress=False)
    original = stages[0] / MODEL / stage1.file
    assert path == tmp_path / "cache" / MODEL / stage1.file
    assert path.read_bytes() == original.read_bytes()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == stage1.sha256
    assert servicer.offsets == [0]
    assert servicer.bytes_sent == stage1.bytes
    assert cache_files(tmp_path / "cache") == [path]  # no partial file left, no other stage fetched


def test_a_cached_file_needs_no_network(serve: Any, library: StageLibrary, stage1: StageFile, tmp_path: Path) -> None:
    coordinator = serve(lambda server: add_model_files_servicer(server, library))
    first = download_stage(coordinator.address, MODEL, stage1, tmp_path, progress=False)
    coordinator.stop()
    again = download_stage(coordinator.address, MODEL, stage1, tmp_path, progress=False, attempts=1)
    assert again == first
    assert hashlib.sha256(again.read_bytes()).hexdigest() == stage1.sha256


def test_a_partial_file_is_resumed_from_its_size(
    serve: Any, library: StageLibrary, stages: tuple[Path, StageManifest], stage1: StageFile, tmp_path: Path
) -> None:
    original = (stages[0] / MODEL / stage1.file).read_bytes()
    kept = 100_000
    (tmp_path / MODEL).mkdir()
    (tmp_path / MODEL / f"{stage1.file}.partial").write_bytes(original[:kept])
    servicer = RecordingServicer(library)
    coordinator = serve(with_servicer(servicer))
    path = download_stage(coordinator.address, MODEL, stage1, tmp_path, progress=False)
    assert servicer.offsets == [kept]
    assert servicer.bytes_sent == stage1.bytes - kept
    assert path.read_bytes() == original
    assert cache_files(tmp_path) == [path]


def test_unavailable_mid_stream_is_retried_and_resumed(
    serve: Any, library: StageLibrary, stages: tuple[Path, StageManifest], stage1: StageFile, tmp_path: Path
) -> None:
    servicer = DroppingServicer(library)
    coordinator = serve(with_servicer(servicer))
    path = download_stage(coordinator.address, MODEL, stage1, tmp_path, progress=False)
    assert servicer.offsets == [0, 2 * CHUNK]
    assert path.read_bytes() == (stages[0] / MODEL / stage1.file).read_bytes()


def test_an_unreachable_coordinator_fails_after_bounded_attempts(stage1: StageFile, tmp_path: Path) -> None:
    coordinator = Coordinator(lambda server: None)
    address = coordinator.address
    coordinator.stop()  # nothing listens there any more
    with pytest.raises(DownloadFailed, match="2 attempts") as caught:
        download_stage(address, MODEL, stage1, tmp_path, progress=False, attempts=2)
    assert caught.value.code == "UNAVAILABLE"


def test_a_corrupted_chunk_is_rejected_and_nothing_is_cached(
    serve: Any, library: StageLibrary, stage1: StageFile, tmp_path: Path
) -> None:
    coordinator = serve(with_servicer(CorruptingServicer(library)))
    with pytest.raises(CorruptDownload) as caught:
        download_stage(coordinator.address, MODEL, stage1, tmp_path, progress=False)
    message = str(caught.value)
    assert stage1.file in message and stage1.sha256 in message and "\n" not in message
    assert cache_files(tmp_path) == []


def test_a_corrupted_cached_file_is_downloaded_again(
    serve: Any, library: StageLibrary, stages: tuple[Path, StageManifest], stage1: StageFile, tmp_path: Path
) -> None:
    (tmp_path / MODEL).mkdir()
    (tmp_path / MODEL / stage1.file).write_bytes(b"not a gguf")
    coordinator = serve(with_servicer(RecordingServicer(library)))
    path = download_stage(coordinator.address, MODEL, stage1, tmp_path, progress=False)
    assert path.read_bytes() == (stages[0] / MODEL / stage1.file).read_bytes()


def test_a_wrong_resumed_partial_is_downloaded_whole(
    serve: Any, library: StageLibrary, stages: tuple[Path, StageManifest], stage1: StageFile, tmp_path: Path
) -> None:
    (tmp_path / MODEL).mkdir()
    (tmp_path / MODEL / f"{stage1.file}.partial").write_bytes(b"\0" * 1000)
    servicer = RecordingServicer(library)
    coordinator = serve(with_servicer(servicer))
    path = download_stage(coordinator.address, MODEL, stage1, tmp_path, progress=False)
    assert servicer.offsets == [1000, 0]
    assert path.read_bytes() == (stages[0] / MODEL / stage1.file).read_bytes()


@pytest.mark.parametrize(
    ("model", "file", "code", "field"),
    [
        ("nope", "tiny.stage1-of-2.gguf", "NOT_FOUND", "model"),
        (MODEL, "tiny.stage7-of-2.gguf", "NOT_FOUND", "file"),
        (MODEL, "manifest.json", "NOT_FOUND", "file"),
        (MODEL, "../etc/passwd", "INVALID_ARGUMENT", "file"),
        (MODEL, "..", "INVALID_ARGUMENT", "file"),
        ("..", "tiny.gguf", "INVALID_ARGUMENT", "model"),
        ("", "tiny.stage1-of-2.gguf", "INVALID_ARGUMENT", "model"),
    ],
)
def test_the_servicer_serves_only_files_in_a_manifest(
    serve: Any, library: StageLibrary, model: str, file: str, code: str, field: str
) -> None:
    coordinator = serve(with_servicer(ModelFilesServicer(library)))
    with grpc.insecure_channel(coordinator.address) as channel:
        stub = pb_grpc.ModelFilesStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Download(pb.DownloadRequest(model=model, file=file), timeout=5))
    assert caught.value.code().name == code
    assert caught.value.details().startswith(f"{field}: ")


def test_the_library_lists_models_and_rejects_stray_paths(library: StageLibrary, stage1: StageFile) -> None:
    assert library.models() == [MODEL]
    served = library.resolve(MODEL, stage1.file)
    assert served.path == library.root / MODEL / stage1.file
    assert len(library.read_chunk(served, 0)) == stage1.bytes  # one default 1 MiB chunk holds it
    assert library.read_chunk(served, stage1.bytes - 10, 100) == served.path.read_bytes()[-10:]
    assert library.read_chunk(served, stage1.bytes) == b""
    for model, file, code, field in [
        (MODEL, "../../etc/passwd", ErrorCode.INVALID_ARGUMENT, "file"),
        (MODEL, "tiny.gguf", ErrorCode.NOT_FOUND, "file"),
        ("other", stage1.file, ErrorCode.NOT_FOUND, "model"),
        ("a/b", stage1.file, ErrorCode.INVALID_ARGUMENT, "model"),
    ]:
        with pytest.raises(SwarmError) as caught:
            library.resolve(model, file)
        assert caught.value.code == code
        assert caught.value.message.startswith(f"{field}: ")
    with pytest.raises(SwarmError, match=r"^INVALID_ARGUMENT: offset: "):
        library.read_chunk(served, stage1.bytes + 1)


def test_a_stage_file_missing_on_disk_is_not_found(
    stages: tuple[Path, StageManifest], stage1: StageFile, tmp_path: Path
) -> None:
    shutil.copytree(stages[0] / MODEL, tmp_path / MODEL)
    (tmp_path / MODEL / stage1.file).unlink()
    with pytest.raises(SwarmError, match=r"^NOT_FOUND: file: .*run swarm split again"):
        StageLibrary(tmp_path).resolve(MODEL, stage1.file)


def test_an_unknown_model_fails_the_download_at_once(
    serve: Any, library: StageLibrary, stage1: StageFile, tmp_path: Path
) -> None:
    coordinator = serve(with_servicer(ModelFilesServicer(library)))
    with pytest.raises(DownloadFailed, match="NOT_FOUND: model: ") as caught:
        download_stage(coordinator.address, "nope", stage1, tmp_path, progress=False)
    assert caught.value.code == "NOT_FOUND"
    assert not cache_files(tmp_path)


def test_a_wrong_token_is_refused(serve: Any, library: StageLibrary, stage1: StageFile, tmp_path: Path) -> None:
    coordinator = serve(lambda server: add_model_files_servicer(server, library, token="secret"))
    for token in ("", "guess"):
        with pytest.raises(DownloadFailed) as caught:
            download_stage(coordinator.address, MODEL, stage1, tmp_path, token=token, progress=False)
        assert caught.value.code == "UNAUTHENTICATED"
    path = download_stage(coordinator.address, MODEL, stage1, tmp_path, token="secret", progress=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == stage1.sha256
