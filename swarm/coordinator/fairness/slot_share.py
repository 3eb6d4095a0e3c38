"""The slot rule of fair queuing: a tenant already running work leaves the last free slot to the others.

Fair queue order alone cannot help a tenant whose request finds every worker slot held by another
tenant's long streams: it waits for one to end. So while more than one tenant has been active
lately, a tenant that runs at least one request of a model may not take that model's last free
slot; the slot stays free for whichever other tenant asks next. Optionally (max_share < 1) it also
holds at most that share of the model's slots: its streams then share the workers' decode steps
with fewer of its own, and another tenant's prefill waits less, for slots left idle. Alone on the
swarm, a tenant takes every slot.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

# A tenant counts as active this long after it last queued a request (through any coordinator).
ACTIVE_TENANT_S = 30.0


@dataclass
class SlotShare:
    """What the rule needs: requests running per (tenant, model), and how many tenants were active lately."""

    running: Counter[tuple[str, str]] = field(default_factory=Counter)
    active_tenants: int = 0
    max_share: float = 1.0  # of a model's slots one tenant may hold while others are active

    def may_take(self, tenant: str, model: str, free_slots: int, total_slots: int = 0) -> bool:
        """Whether a request of tenant may take one of the model's free_slots (of total_slots) now."""
        if free_slots <= 0:
            return False
        if self.active_tenants < 2:
            return True
        running = self.running[(tenant, model)]
        if self.max_share < 1 and running and running >= max(1, math.floor(self.max_share * total_slots)):
            return False
        return free_slots > 1 or running == 0

    def took(self, tenant: str, model: str) -> None:
        self.running[(tenant, model)] += 1
