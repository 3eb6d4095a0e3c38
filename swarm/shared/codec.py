"""JSON encoding of in-process dataclasses for Redis (never pickle: Redis content crosses the network)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from swarm.shared.types import (
    Finished,
    FinishReason,
    GenerationRequest,
    SamplingParams,
    WorkerInfo,
    WorkerLoad,
)


def to_json(value: Any) -> str:
    return json.dumps(dataclasses.asdict(value), separators=(",", ":"))


def request_from_json(text: str | bytes) -> GenerationRequest:
    data = json.loads(text)
    data["sampling"] = SamplingParams(**data["sampling"])
    data["stop"] = tuple(data["stop"])
    data["resume_tokens"] = tuple(data.get("resume_tokens", ()))
    return GenerationRequest(**data)


def worker_info_from_json(text: str | bytes) -> WorkerInfo:
    return WorkerInfo(**json.loads(text))


def worker_load_from_json(text: str | bytes) -> WorkerLoad:
    return WorkerLoad(**json.loads(text))


def finished_from_dict(data: dict[str, Any]) -> Finished:
    return Finished(**{**data, "reason": FinishReason(data["reason"])})
