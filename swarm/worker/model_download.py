"""Model download: fetches this worker's stage file from the coordinator, checked by sha256 and cached on disk.

The file streams chunk by chunk into ``<cache>/<model>/<file>.partial`` (never whole in memory),
resumes from that partial file after an interruption, and becomes ``<cache>/<model>/<file>`` only
once its sha256 matches the stage plan. A cached file with the right sha256 needs no network.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from tqdm import tqdm

from swarm.gguf_files.stage_files import StageFile, StageManifest
from swarm.shared.auth import bearer_metadata
from swarm.shared.backoff import backoff_delays
from swarm.shared.hashing import sha256_of
from swarm.shared.tls import TlsFiles, channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

__all__ = ["CorruptDownload", "DownloadFailed", "download_stage"]

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 300.0  # one Download call; a longer transfer carries on in the next call from where it stopped
ATTEMPTS = 8  # calls in a row that may fail without receiving a byte before giving up
PARTIAL_SUFFIX = ".partial"
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_HASH_CHUNK = 1 << 20
_MAX_MESSAGE_BYTES = 8 << 20


class DownloadFailed(RuntimeError):
    """The coordinator would not or could not serve the stage file; code is the gRPC status name, if any."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class CorruptDownload(DownloadFailed):
    """The received bytes are not the stage file the plan names; nothing of them is kept."""


def fetch_manifest(
    coordinator: str, model: str, token: str = "", timeout_s: float = 30.0, tls: TlsFiles | None = None
) -> StageManifest:
    """The stage manifest the coordinator holds for model; raises DownloadFailed naming the reason."""
    with channel(coordinator, tls) as opened:
        try:
            reply = pb_grpc.ModelFilesStub(opened).GetManifest(
                pb.GetManifestRequest(model=model),
                metadata=bearer_metadata(token),
                timeout=timeout_s,
                wait_for_ready=True,
            )
        except grpc.RpcError as exc:
            raise DownloadFailed(
                f"cannot get the manifest of {model!r} from {coordinator}: {exc.details()}", code=exc.code().name
            ) from None
    return StageManifest.from_json(reply.manifest_json)


def download_stage(
    coordinator: str,
    model: str,
    stage: StageFile,
    cache_dir: Path,
    token: str = "",
    progress: bool = True,
    *,
    attempts: int = ATTEMPTS,
    call_timeout_s: float = CALL_TIMEOUT_S,
    tls: TlsFiles | None = None,
) -> Path:
    """The path of the stage file in cache_dir/model/, downloaded from the coordinator unless cached already.

    Retries UNAVAILABLE and DEADLINE_EXCEEDED with backoff, resuming where the file stopped, until
    `attempts` calls in a row brought no byte; raises DownloadFailed then, or at once for any other
    refusal, and CorruptDownload when the bytes do not hash to stage.sha256 (after one fresh download
    when a resumed partial file was to blame).
    """
    for field, value in (("model", model), ("stage file", stage.file)):
        if not value or "/" in value or "\\" in value or ".." in value:
            raise ValueError(f"{field} {value!r} must be a plain name, without '/' or '..'")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    folder = cache_dir / model
    folder.mkdir(parents=True, exist_ok=True)
    # Workers on one PC share the cache: one downloads, the others wait and find the file cached.
    with (folder / f"{stage.file}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch(coordinator, model, stage, folder, token, progress, attempts, call_timeout_s, tls)


def _fetch(
    coordinator: str,
    model: str,
    stage: StageFile,
    folder: Path,
    token: str,
    progress: bool,
    attempts: int,
    call_timeout_s: float,
    tls: TlsFiles | None,
) -> Path:
    target = folder / stage.file
    if target.is_file():
        found = sha256_of(target)
        if found == stage.sha256:
            log.info("stage file %s is cached at %s", stage.file, target)
            return target
        log.warning("cached %s has sha256 %s, not %s; downloading it again", target, found, stage.sha256)
        target.unlink()
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    digest, size = _resume(partial, stage)

    files = channel(coordinator, tls, options=[("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)])
    bar = tqdm(
        desc=stage.file,
        total=stage.bytes,
        initial=size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
    )
    try:
        with partial.open("ab") as out:
            _Transfer(pb_grpc.ModelFilesStub(files), coordinator, model, stage, token, out, digest, size, bar).run(
                attempts, call_timeout_s
            )
            out.flush()
            os.fsync(out.fileno())
    except DownloadFailed as exc:
        if isinstance(exc, CorruptDownload) or partial.stat().st_size == 0:
            partial.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
        files.close()

    found = digest.hexdigest()
    if found != stage.sha256:
        partial.unlink(missing_ok=True)
        if size:  # the bytes kept from an earlier run may be what is wrong: fetch the whole file once more
            log.warning("resumed %s hashes to %s, not %s; downloading it whole", stage.file, found, stage.sha256)
            return _fetch(coordinator, model, stage, folder, token, progress, attempts, call_timeout_s, tls)
        raise CorruptDownload(
            f"downloaded {stage.file} from {coordinator} has sha256 {found}, expected {stage.sha256}; deleted it"
        )
    partial.replace(target)
    log.info("downloaded stage file %s (%d bytes) to %s", stage.file, stage.bytes, target)
    return target


def _resume(partial: Path, stage: StageFile) -> tuple[Any, int]:
    """sha256 state and size of what an earlier attempt left in the partial file (none when it cannot be right)."""
    digest = hashlib.sha256()
    if not partial.is_file():
        return digest, 0
    size = partial.stat().st_size
    if size > stage.bytes:
        log.warning("%s is larger than the %d-byte stage file; starting over", partial, stage.bytes)
        partial.unlink()
        return digest, 0
    with partial.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    log.info("resuming %s from byte %d of %d", stage.file, size, stage.bytes)
    return digest, size


class _Transfer:
    """Calls Download until the file is complete, writing each chunk at the end of the partial file."""

    def __init__(
        self,
        stub: Any,
        coordinator: str,
        model: str,
        stage: StageFile,
        token: str,
        out: BinaryIO,
        digest: Any,
        size: int,
        bar: tqdm[Any],
    ) -> None:
        self._stub = stub
        self._coordinator = coordinator
        self._model = model
        self._stage = stage
        self._metadata = bearer_metadata(token)
        self._out = out
        self._digest = digest
        self.size = size
        self._bar = bar

    def run(self, attempts: int, call_timeout_s: float) -> None:
        delays = backoff_delays()
        failures = 0
        while self.size < self._stage.bytes:
            before = self.size
            problem = self._call(call_timeout_s)
            if self.size > before:
                failures, delays = 0, backoff_delays()
                if problem:
                    log.warning(
                        "download of %s stopped at byte %d (%s); resuming", self._stage.file, self.size, problem
                    )
                continue
            failures += 1
            if failures >= attempts:
                raise DownloadFailed(
                    f"cannot download {self._model}/{self._stage.file} from {self._coordinator}: {problem} "
                    f"({attempts} attempts); check that the coordinator is up and reachable",
                    "UNAVAILABLE",
                )
            delay = next(delays)
            log.warning(
                "cannot download %s from %s (%s); retrying in %.1f s",
                self._stage.file,
                self._coordinator,
                problem,
                delay,
            )
            time.sleep(delay)

    def _call(self, timeout_s: float) -> str:
        """One Download call from the current size; what went wrong in words, or "" when the stream ended."""
        request = pb.DownloadRequest(model=self._model, file=self._stage.file, offset=self.size)
        try:
            for chunk in self._stub.Download(request, metadata=self._metadata, timeout=timeout_s):
                self._write(chunk)
        except grpc.RpcError as exc:
            code = exc.code()
            if code not in _RETRYABLE:
                raise DownloadFailed(
                    f"coordinator {self._coordinator} refused {self._model}/{self._stage.file}: "
                    f"{code.name}: {exc.details()}",
                    code.name,
                ) from exc
            return str(code.name)
        if self.size < self._stage.bytes:
            return f"the stream ended at byte {self.size} of {self._stage.bytes}"
        return ""

    def _write(self, chunk: pb.FileChunk) -> None:
        stage = self._stage
        if chunk.sha256 != stage.sha256 or chunk.total_bytes != stage.bytes:
            raise CorruptDownload(
                f"coordinator {self._coordinator} serves {stage.file} as {chunk.total_bytes} bytes with sha256 "
                f"{chunk.sha256}, but the stage plan says {stage.bytes} bytes with sha256 {stage.sha256}; "
                "the model was split again: restart the worker to get the current plan"
            )
        if chunk.offset != self.size:
            raise CorruptDownload(
                f"coordinator {self._coordinator} sent {stage.file} bytes at offset {chunk.offset}, "
                f"but the file so far has {self.size}"
            )
        if self.size + len(chunk.data) > stage.bytes:
            raise CorruptDownload(
                f"coordinator {self._coordinator} sent more than the {stage.bytes} bytes of {stage.file}"
            )
        self._out.write(chunk.data)
        self._digest.update(chunk.data)
        self.size += len(chunk.data)
        self._bar.update(len(chunk.data))
