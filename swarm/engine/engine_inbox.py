"""What other threads put in a BatchEngine's inbox; its own thread takes them between steps."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

from opentelemetry.context import Context

from swarm.engine.sequence import EmitFn
from swarm.shared.types import GenerationRequest


@dataclass(frozen=True)
class Submit:
    request: GenerationRequest
    emit: EmitFn
    trace: Context | None
    submitted_ns: int


@dataclass(frozen=True)
class Cancel:
    request_id: str


@dataclass(frozen=True)
class SetLoaded:
    """Frees the model (False) or loads it again (True); done once it has."""

    loaded: bool
    done: Future[None]


@dataclass(frozen=True)
class SetThreads:
    """The whole model's steps run on this many threads from the next one."""

    threads: int
    done: Future[None]


InboxItem = Submit | Cancel | SetLoaded | SetThreads | None  # None: stop
