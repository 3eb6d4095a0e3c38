"""Builds a coordinator's ModelFleet from its config: the planned models, their plans kept in Redis."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.planning.assigner import StageAssigner
from swarm.coordinator.planning.demand_store import DemandStore
from swarm.coordinator.planning.model_fleet import ModelFleet
from swarm.coordinator.planning.plan_store import PlanStore
from swarm.coordinator.planning.shared_demand import SharedDemand
from swarm.gguf_files.default_model import resolve_model


async def build_fleet(
    config: CoordinatorConfig, redis: Redis, library_root: Path
) -> tuple[SharedDemand | None, dict[str, PlanStore]]:
    """The fleet of planned models with the demand every coordinator shares (None when the coordinator plans
    none), with a previous coordinator's plans taken over."""
    models = config.planned_models()
    if not models:
        return None, {}
    assigners = [
        StageAssigner(resolve_model(spec), name, library_root, config.plan_stages or None) for name, spec in models
    ]
    fleet = ModelFleet(assigners, config.pinned_models, config.model_residency_s)
    plans = {name: PlanStore(redis, name) for name, _ in models}
    previous = {}
    for name, store in plans.items():
        state = await store.load()
        if state is not None:
            previous[name] = state
    fleet.restore(previous)
    return SharedDemand(fleet, DemandStore(redis, config.model_load_wait_s), config.poll_interval_s), plans
