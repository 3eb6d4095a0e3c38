"""Asking the coordinators what to serve (`swarm join --auto`): this PC's offer in, its part of the plan out."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import grpc
import numpy as np
import psutil

from swarm.client.failover import channel_options
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles, channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.worker.coordinators import UNREACHABLE, CoordinatorRotation

log = logging.getLogger(__name__)

OFFERED_SHARE_OF_FREE_MEMORY = 0.8  # leave the owner of the PC some room
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Assignment:
    model: str  # the name clients use
    split: str  # the ModelFiles model key to download the stage file from
    stage_index: int  # within the split; 0 for a whole replica
    next_stage: str  # host:port of the next stage; empty for the last stage and whole replicas
    description: str  # for the log: "the whole model" or "stage 2/3 (layers 9-17)"
    coordinator: str  # the coordinator that assigned it, which serves its stage file


def parse_size(text: str) -> int:
    """Bytes from '6G', '512M', '1.5g' or a plain number of bytes; ValueError naming --memory otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"--memory: {text!r} is not a size like 6G or 512M")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[match.group(2).lower()]
    size = int(float(match.group(1)) * scale)
    if size <= 0:
        raise ValueError("--memory must be more than 0 bytes")
    return size


def offered_memory() -> int:
    return int(psutil.virtual_memory().available * OFFERED_SHARE_OF_FREE_MEMORY)


def measure_speed(seconds: float = 0.3) -> float:
    """Bytes of weights this PC reads per second in a matrix-vector product: decoding a token is one such
    pass over every weight, so this ranks PCs as the planner needs."""
    weights = np.ones((2048, 8192), dtype=np.float32)  # 64 MB: larger than the caches
    vector = np.ones(8192, dtype=np.float32)
    passes, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or passes < 3:
        weights @ vector
        passes += 1
    return weights.nbytes * passes / elapsed


def request_assignment(
    coordinators: tuple[str, ...],
    token: str,
    tls: TlsFiles | None,
    offer: pb.AssignRequest,
    timeout_s: float = 10.0,
) -> Assignment:
    """Asks whichever coordinator answers until the plan has a part for this node; ValueError if it plans no model."""
    rotation = CoordinatorRotation(len(coordinators))
    waiting_reason = ""
    channels = [channel(a, tls, channel_options(a)) for a in coordinators]
    try:
        while True:
            coordinator = coordinators[rotation.index]
            try:
                reply = pb_grpc.RegistryStub(channels[rotation.index]).Assign(
                    offer, metadata=bearer_metadata(token), timeout=timeout_s
                )
            except grpc.RpcError as exc:
                if exc.code() in UNREACHABLE:
                    delay = rotation.unreachable()
                    log.warning(
                        "cannot reach coordinator %s (%s); trying %s in %.1f s",
                        coordinator,
                        exc.code().name,
                        coordinators[rotation.index],
                        delay,
                    )
                    time.sleep(delay)
                    continue
                raise ValueError(f"the coordinator refused to assign work: {exc.details()}") from None
            rotation.answered()
            if reply.model:
                return Assignment(
                    model=reply.model,
                    split=reply.split,
                    stage_index=reply.stage_index,
                    next_stage=reply.next_stage,
                    coordinator=coordinator,
                    description=(
                        f"stage {reply.stage_index + 1}/{reply.stage_count} (layers {reply.layer_start}-"
                        f"{reply.layer_end - 1})"
                        if reply.stage_count
                        else "the whole model"
                    ),
                )
            if reply.message != waiting_reason:
                waiting_reason = reply.message
                log.info("waiting for work: %s", reply.message)
            time.sleep(reply.retry_after_s or 1.0)
    finally:
        for opened in channels:
            opened.close()
