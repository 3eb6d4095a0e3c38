"""SessionTable: maps the sessions of each upstream stream to this stage's own sequence ids.

Replicas of a stage feed the next stage round-robin, so one stage may serve several stages
before it, each numbering its sessions from 0. Every stream gets its own namespace here:
an opened session takes a local id, and its replies go back under the upstream id. A
released session keeps its id (and its KV cells) while the id is not needed elsewhere, so
the stage before can reopen it keeping a shared prompt prefix.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import replace

from swarm.engine.stage_executor import CacheLost
from swarm.shared.stage_messages import PipelineStep

_Key = tuple[Hashable, int]  # (stream, upstream session id)


class NoFreeSession(RuntimeError):
    """Every local sequence id is in use by some stream."""


class SessionTable:
    def __init__(self, slots: int) -> None:
        self._free = list(range(slots - 1, -1, -1))  # ids holding nothing; pop() hands out 0 first
        self._local: dict[_Key, int] = {}  # running and remembered sessions
        self._upstream: dict[int, _Key] = {}
        self._idle: OrderedDict[int, None] = OrderedDict()  # released, still holding their cache; oldest first

    def translate(self, stream: Hashable, step: PipelineStep) -> PipelineStep:
        """The step in local ids: releases first, then opens (keeping a prefix where asked), then rows."""
        releases = tuple(self._release(stream, s) for s in step.releases if (stream, s) in self._local)
        opens = tuple(replace(o, session=self._open(stream, o.session, o.keep)) for o in step.opens)
        work = tuple(replace(w, session=self.local(stream, w.session)) for w in step.work)
        return PipelineStep(opens, releases, work)

    def local(self, stream: Hashable, session: int) -> int:
        local = self._local.get((stream, session))
        if local is None or local in self._idle:
            raise ValueError(f"session {session} was never opened on this stream")
        return local

    def upstream(self, local: int) -> int:
        return int(self._upstream[local][1])

    def drop(self, stream: Hashable) -> list[int]:
        """Forgets every session of a stream that ended; returns their local ids."""
        dropped = [local for key, local in self._local.items() if key[0] == stream]
        for local in dropped:
            del self._local[self._upstream.pop(local)]
            self._idle.pop(local, None)
            self._free.append(local)
        return dropped

    def _open(self, stream: Hashable, session: int, keep: int) -> int:
        local = self._local.get((stream, session))
        if local is not None:  # its last run's cells are still here
            self._idle.pop(local, None)
            return local
        if keep:
            raise CacheLost(f"session {session} asks to keep {keep} cached positions this stage no longer holds")
        if not self._free and self._idle:
            evicted, _ = self._idle.popitem(last=False)
            del self._local[self._upstream.pop(evicted)]
            self._free.append(evicted)
        if not self._free:
            raise NoFreeSession(f"all {len(self._upstream)} sessions of this stage are in use; give it more --slots")
        local = self._free.pop()
        self._local[(stream, session)] = local
        self._upstream[local] = (stream, session)
        return local

    def _release(self, stream: Hashable, session: int) -> int:
        local = self._local[(stream, session)]
        self._idle[local] = None
        return local
