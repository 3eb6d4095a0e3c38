"""Model files: the coordinator serves stage files named in a model's manifest, in chunks, to joining workers.

StageLibrary is plain code over a folder with one sub-folder per model, each holding the
manifest.json and stage files that split_model wrote. It hands out a file only when that
model's manifest names it, so a request can never reach another path. ModelFilesServicer
decodes a DownloadRequest, reads chunks in a worker thread and encodes them as FileChunks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from swarm.gguf_files.stage_files import MANIFEST_NAME, StageFile, StageManifest
from swarm.shared.auth import TokenGate
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.grpc_errors import error_boundary

__all__ = [
    "CHUNK_BYTES",
    "MAX_CHUNK_BYTES",
    "ModelFilesServicer",
    "ServedFile",
    "StageLibrary",
    "add_model_files_servicer",
]

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# gRPC's default receive limit is 4 MiB per message; a chunk and its envelope stay below it.
MAX_CHUNK_BYTES = 3 << 20


@dataclass(frozen=True)
class ServedFile:
    """A stage file the library will serve: the model folder's name, the manifest's entry and its path."""

    model: str
    stage: StageFile
    path: Path


def _plain_name(field: str, value: str) -> str:
    """value when it names an entry of one folder (no separators, no '..'); else INVALID_ARGUMENT."""
    if not value:
        raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"{field}: must not be empty")
    if "/" in value or "\\" in value or "\0" in value or ".." in value:
        raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"{field}: {value!r} must be a plain name, without '/' or '..'")
    return value


class StageLibrary:
    """Stage files under root/<model>/, as split_model wrote them with their manifest.json."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def models(self) -> list[str]:
        """Names of the sub-folders that hold a manifest, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST_NAME).is_file())

    def manifest(self, model: str) -> StageManifest:
        """The model's manifest, read afresh so a re-split model is served as it is now."""
        folder = self.root / _plain_name("model", model)
        try:
            text = (folder / MANIFEST_NAME).read_text(encoding="utf-8")
        except FileNotFoundError:
            served = ", ".join(self.models()) or "none"
            raise SwarmError(
                ErrorCode.NOT_FOUND,
                f"model: no stage files for {model!r} here (served: {served}); split it into {folder} with swarm split",
            ) from None
        try:
            return StageManifest.from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            raise SwarmError(
                ErrorCode.INTERNAL, f"model: the manifest of {model!r} is unreadable ({exc}); run swarm split again"
            ) from exc

    def resolve(self, model: str, file: str) -> ServedFile:
        """The stage file the model's manifest names file; NOT_FOUND or INVALID_ARGUMENT naming the field otherwise."""
        _plain_name("model", model)
        _plain_name("file", file)
        manifest = self.manifest(model)
        stage = next((s for s in manifest.stages if s.file == file), None)
        if stage is None:
            names = ", ".join(s.file for s in manifest.stages)
            raise SwarmError(ErrorCode.NOT_FOUND, f"file: {file!r} is not a stage file of {model!r} (stages: {names})")
        path = self.root / model / stage.file
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise SwarmError(
                ErrorCode.NOT_FOUND,
                f"file: {file!r} is in the manifest of {model!r} but missing at {path}; run swarm split again",
            ) from None
        if size != stage.bytes:
            raise SwarmError(
                ErrorCode.INTERNAL,
                f"file: {path} has {size} bytes but its manifest says {stage.bytes}; run swarm split again",
            )
        return ServedFile(model, stage, path)

    def read_chunk(self, served: ServedFile, offset: int, size: int = CHUNK_BYTES) -> bytes:
        """Up to size bytes from offset (fewer at the end, none at the end of the file). Blocks on disk."""
        total = served.stage.bytes
        if not 0 <= offset <= total:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"offset: {offset} is past the end of {served.stage.file}")
        want = min(size, total - offset)
        with served.path.open("rb") as f:
            f.seek(offset)
            data = f.read(want)
        if len(data) != want:
            raise SwarmError(
                ErrorCode.INTERNAL, f"file: {served.path} shrank while being served; run swarm split again"
            )
        return data


class ModelFilesServicer(pb_grpc.ModelFilesServicer):  # type: ignore[misc]
    def __init__(self, library: StageLibrary, token: str = "", chunk_bytes: int = CHUNK_BYTES) -> None:
        if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be in 1..{MAX_CHUNK_BYTES}, got {chunk_bytes}")
        self._library = library
        self._gate = TokenGate(token, "model file request")
        self._chunk_bytes = chunk_bytes

    @error_boundary
    async def GetManifest(
        self, request: pb.GetManifestRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetManifestResponse:
        await self._gate.check(context)
        manifest = await asyncio.to_thread(self._library.manifest, request.model)
        return pb.GetManifestResponse(manifest_json=manifest.to_json())

    @error_boundary
    async def Download(
        self, request: pb.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FileChunk]:
        await self._gate.check(context)
        served = await asyncio.to_thread(self._library.resolve, request.model, request.file)
        offset = request.offset
        if offset > served.stage.bytes:
            raise SwarmError(
                ErrorCode.INVALID_ARGUMENT,
                f"offset: {offset} is past the end of {served.stage.file} ({served.stage.bytes} bytes)",
            )
        log.info("serving %s/%s from byte %d to %s", served.model, served.stage.file, offset, context.peer())
        while offset < served.stage.bytes:
            data = await asyncio.to_thread(self._library.read_chunk, served, offset, self._chunk_bytes)
            yield pb.FileChunk(data=data, offset=offset, total_bytes=served.stage.bytes, sha256=served.stage.sha256)
            offset += len(data)


def add_model_files_servicer(server: Any, library: StageLibrary, token: str = "") -> ModelFilesServicer:
    """Registers the ModelFiles service on a grpc.aio server; token is the coordinator's join token."""
    servicer = ModelFilesServicer(library, token)
    pb_grpc.add_ModelFilesServicer_to_server(servicer, server)
    return servicer
