"""QueuedDemand: the planned models this coordinator's queued requests wait for, kept wanted from the fleet.

A request for a planned model no worker serves is queued at once like any other. On each dispatch
pass, every such model that a request this coordinator owns waits for (accepted here, or taken over
from a coordinator that died) has its want renewed in the shared demand (SharedDemand writes it at
most once a second), so the fleet of the coordinator its nodes heartbeat through moves a node to it.
Once no queued request asks for it any more, its want lapses in Redis (DemandStore's TTL). The pass
gets back the load rule for its dispatch plan (dispatch_plan.ModelLoads).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from swarm.coordinator.dispatch_plan import ModelLoads
from swarm.coordinator.planning.shared_demand import SharedDemand
from swarm.shared.types import WorkerView

log = logging.getLogger(__name__)


def models_to_load(waiting: Iterable[str], workers: Iterable[WorkerView], planned: Collection[str]) -> set[str]:
    """The planned models among those requests wait for that no worker up takes requests for.

    A worker draining away still counts as serving its model, as it does for the fleet (ModelFleet.rebalance
    finds a want met by it): a want renewed here and deleted there on every pass would only churn.
    """
    served = {v.info.model for v in workers if v.up and v.info.takes_requests}
    return {model for model in set(waiting) if model in planned and model not in served}


class QueuedDemand:
    def __init__(self, demand: SharedDemand, wait_s: float) -> None:
        self._demand = demand
        self._wait_s = wait_s  # config.model_load_wait_s
        self._loading: set[str] = set()  # models wanted on the last pass: their first want is logged

    async def keep_wanted(self, waiting: Iterable[str], workers: Iterable[WorkerView]) -> ModelLoads:
        """Wants each planned model that requests owned here wait for (`waiting`: their models) and no worker
        serves; the load rule for this pass's dispatch plan."""
        models = self._demand.fleet.models
        loading = models_to_load(waiting, workers, models)
        for model in sorted(loading):
            if model not in self._loading:
                log.info("model %s is asked for and no worker serves it: loading it", model)
            await self._demand.want(model)
        self._loading = loading
        return ModelLoads(frozenset(models), self._wait_s)
