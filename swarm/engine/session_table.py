"""SessionTable: maps the sessions of each upstream stream to this stage's own sequence ids.

Replicas of a stage feed the next stage round-robin, so one stage may serve several stages
before it, each numbering its sessions from 0. Every stream gets its own namespace here:
an opened session takes a free local id, and its replies go back under the upstream id.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import replace

from swarm.engine.stage_executor import PipelineStep


class NoFreeSession(RuntimeError):
    """Every local sequence id is in use by some stream."""


class SessionTable:
    def __init__(self, slots: int) -> None:
        self._free = list(range(slots - 1, -1, -1))  # pop() hands out 0 first
        self._local: dict[tuple[Hashable, int], int] = {}
        self._upstream: dict[int, tuple[Hashable, int]] = {}

    def translate(self, stream: Hashable, step: PipelineStep) -> PipelineStep:
        """The step in local ids: releases free their ids first, then opens take free ones."""
        releases = tuple(self._release(stream, s) for s in step.releases if (stream, s) in self._local)
        opens = tuple(replace(o, session=self._open(stream, o.session)) for o in step.opens)
        work = tuple(replace(w, session=self.local(stream, w.session)) for w in step.work)
        return PipelineStep(opens, releases, work)

    def local(self, stream: Hashable, session: int) -> int:
        try:
            return self._local[(stream, session)]
        except KeyError:
            raise ValueError(f"session {session} was never opened on this stream") from None

    def upstream(self, local: int) -> int:
        return self._upstream[local][1]

    def drop(self, stream: Hashable) -> list[int]:
        """Frees every session of a stream that ended; returns their local ids."""
        mine = [key for key in self._local if key[0] == stream]
        return [self._release(stream, session) for _, session in mine]

    def _open(self, stream: Hashable, session: int) -> int:
        if (stream, session) in self._local:  # opened again: a fresh start on the same local id
            return self._local[(stream, session)]
        if not self._free:
            raise NoFreeSession(f"all {len(self._upstream)} sessions of this stage are in use; give it more --slots")
        local = self._free.pop()
        self._local[(stream, session)] = local
        self._upstream[local] = (stream, session)
        return local

    def _release(self, stream: Hashable, session: int) -> int:
        local = self._local.pop((stream, session))
        del self._upstream[local]
        self._free.append(local)
        return local
