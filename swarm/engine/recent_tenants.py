"""RecentTenants: which tenants used an engine lately, so steps stay short while one of them may come back.

A tenant's first request cuts the step under way short, but llama.cpp stops a decode only between
graph nodes, and the output head's matrix product is one node: on Gemma 3 270M, 25 ms per decode row
at one thread, most of a step. So while a tenant that ran here lately runs nothing (a user between
requests, say), each step carries at most half the slots' decode rows: the head that tenant's next
request may wait for is half as long, and the running tenants lose little (the rows left out go first
in the next step). Measured in docs/benchmarks.md, "Fair queuing".
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

RECENT_S = 5.0  # a tenant that ran here this recently may send its next request any moment
WAITING_ROW_SHARE = 0.5  # of the slots: the decode rows a step carries while such a tenant runs nothing


class RecentTenants:
    """Kept on the engine thread: when each tenant last started or ended a sequence here."""

    def __init__(self, recent_s: float = RECENT_S) -> None:
        self._recent_s = recent_s
        self._last: dict[str, float] = {}

    def saw(self, tenant: str, now: float) -> None:
        self._last[tenant] = now

    def one_may_return(self, running: AbstractSet[str], now: float) -> bool:
        """Whether a tenant seen in the last recent_s runs nothing now (older ones are forgotten)."""
        for tenant in [t for t, at in self._last.items() if now - at >= self._recent_s]:
            del self._last[tenant]
        return any(tenant not in running for tenant in self._last)


def decode_row_cap(slots: int, one_may_return: bool) -> int:
    """The most decode rows a step may carry (0: no cap)."""
    return max(1, int(slots * WAITING_ROW_SHARE)) if one_may_return else 0
