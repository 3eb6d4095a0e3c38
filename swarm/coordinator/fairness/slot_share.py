"""The slot rule of fair queuing: a tenant already running work leaves the last free slot to the others.

Fair queue order alone cannot help a tenant whose request finds every worker slot held by another
tenant's long streams: it waits for one to end. So while more than one tenant has been active
lately, a tenant that runs at least one request of a model may not take that model's last free
slot; the slot stays free for whichever other tenant asks next. Alone on the swarm, a tenant takes
every slot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# A tenant counts as active this long after its last request was admitted here.
ACTIVE_TENANT_S = 30.0


@dataclass
class SlotShare:
    """What the rule needs: requests running per (tenant, model), and how many tenants were active lately."""

    running: Counter[tuple[str, str]] = field(default_factory=Counter)
    active_tenants: int = 0

    def may_take(self, tenant: str, model: str, free_slots: int) -> bool:
        """Whether a request of tenant may take one of the model's free_slots now."""
        if free_slots <= 0:
            return False
        if free_slots > 1 or self.active_tenants < 2:
            return True
        return self.running[(tenant, model)] == 0

    def took(self, tenant: str, model: str) -> None:
        self.running[(tenant, model)] += 1
