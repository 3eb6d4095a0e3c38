"""Swarm workers on a Ray cluster: place them as named actors in a placement group, list them, remove them.

Ray is imported lazily, so `swarm` works without it; Ray's own calls between the driver and the actors
(cloudpickle, guarded by the cluster's auth token) carry only names, strings and numbers.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm.deploy.ray_actor import DRAIN_TIMEOUT_S, WorkerActor
from swarm.worker.coordinators import coordinator_list

log = logging.getLogger(__name__)

NAMESPACE = "swarm"
ACTOR_PREFIX = "swarm-worker-"
GROUP_PREFIX = "swarm-workers-"
RAY_MISSING = "Ray is not installed here: pip install 'swarm[ray]'"


class RayFleetError(Exception):
    """Ray is missing or unreachable, or the cluster cannot hold the workers asked for."""


@dataclass(frozen=True)
class RayFleetConfig:
    """What `swarm ray up` places: N workers of T threads each, and what each one's `swarm join` gets."""

    ray_address: str = "auto"
    workers: int = 1
    threads: int = 2
    slots: int = 8
    context: int = 2048
    model: str = "default"
    # Instead of a model: each worker offers its node's memory and speed (`swarm join --auto`) and serves what the
    # coordinator's plan gives it, a whole replica or a pipeline stage; SPREAD puts a pipeline's stages on
    # different nodes. `memory`: what each offers (e.g. 6G; "": 80% of its node's free RAM).
    auto: bool = False
    memory: str = ""
    # HOST:PORT, several comma-separated or dns:///NAME:PORT; empty: each worker's $SWARM_COORDINATOR, else the
    # coordinator on its LAN (mDNS)
    coordinator: str = ""
    token: str = ""
    pack: bool = False  # PACK the workers onto few nodes instead of SPREADing them one per node
    listen_host: str = "0.0.0.0"
    advertise_host: str = ""  # empty: each node's address in the Ray cluster
    ready_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.threads < 1:
            raise ValueError("--threads must be at least 1")
        if self.slots < 1:
            raise ValueError("--slots must be at least 1")
        if self.context < 16:
            raise ValueError("--context must be at least 16 tokens")
        if self.coordinator:
            coordinator_list(self.coordinator)
        if not self.model and not self.auto:
            raise ValueError("--model must name a GGUF path or 'default'")
        if self.memory and not self.auto:
            raise ValueError("--memory goes with --auto (a worker given --model loads that model whole)")
        if self.ready_timeout_s <= 0:
            raise ValueError("the ready timeout must be positive")

    @property
    def strategy(self) -> str:
        return "PACK" if self.pack else "SPREAD"

    def join_args(self) -> list[str]:
        """Arguments of each actor's `swarm join`, less the worker id and addresses the actor adds."""
        args = [self.coordinator] if self.coordinator else []
        if self.auto:
            args += ["--auto", *(["--memory", self.memory] if self.memory else [])]
        else:
            args += ["--model", self.model]
        args += ["--threads", str(self.threads), "--slots", str(self.slots)]
        args += ["--context", str(self.context)]
        return [*args, "--token", self.token] if self.token else args


def import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise RayFleetError(RAY_MISSING) from exc


def use_token_auth_if_configured() -> None:
    """Ray starts clusters with token authentication but sends the token only under RAY_AUTH_MODE=token;
    where a token is at hand and no mode is set, say so, as Ray's own `ray start` does."""
    has_token = any(os.environ.get(v) for v in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    if "RAY_AUTH_MODE" not in os.environ and (has_token or (Path.home() / ".ray" / "auth_token").exists()):
        os.environ["RAY_AUTH_MODE"] = "token"


def connect(address: str) -> Any:
    """The ray module, connected to the cluster at address in the swarm namespace."""
    use_token_auth_if_configured()
    ray = import_ray()
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayFleetError(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc
    return ray


def actor_name(index: int) -> str:
    return f"{ACTOR_PREFIX}{index}"


def worker_names(ray: Any) -> list[str]:
    """Names of this cluster's swarm worker actors, in index order."""
    names = [n for n in ray.util.list_named_actors() if re.fullmatch(rf"{ACTOR_PREFIX}\d+", n)]
    return sorted(names, key=lambda n: int(n.removeprefix(ACTOR_PREFIX)))


def fleet_up(config: RayFleetConfig) -> list[str]:
    """Starts the workers that are missing of swarm-worker-0..N-1 and waits until every one answers."""
    ray = connect(config.ray_address)
    try:
        wanted = [actor_name(i) for i in range(config.workers)]
        missing = [n for n in wanted if n not in set(worker_names(ray))]
        if missing:
            place_workers(ray, config, missing)
        handles = [ray.get_actor(n) for n in wanted]
        try:
            ray.get([h.ping.remote() for h in handles], timeout=config.ready_timeout_s)
        except ray.exceptions.RayError as exc:
            raise RayFleetError(f"the workers did not start: {exc}") from exc
        return wanted
    finally:
        ray.shutdown()


def place_workers(ray: Any, config: RayFleetConfig, names: list[str]) -> None:
    """One placement group bundle of `threads` CPUs per worker; detached, so they outlive this command."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = ray.util.placement_group(
        [{"CPU": float(config.threads)}] * len(names),
        strategy=config.strategy,
        name=f"{GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
        lifetime="detached",
    )
    try:
        ray.get(group.ready(), timeout=config.ready_timeout_s)
    except ray.exceptions.GetTimeoutError as exc:
        ray.util.remove_placement_group(group)
        raise RayFleetError(
            f"the Ray cluster has no room for {len(names)} workers of {config.threads} CPUs each "
            f"(strategy {config.strategy}); see `ray status`"
        ) from exc
    worker_class = ray.remote(WorkerActor)
    for index, name in enumerate(names):
        worker_class.options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",
            max_restarts=-1,  # a worker whose process died comes back and joins again
            num_cpus=config.threads,
            scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index),
        ).remote(name, config.join_args(), config.listen_host, config.advertise_host)
        log.info("placed %s (%d CPUs, %s)", name, config.threads, config.strategy)


def fleet_status(address: str, timeout_s: float = 10.0) -> list[dict[str, str | int]]:
    """Each worker actor's name, state, worker address, host and worker pid."""
    ray = connect(address)
    try:
        rows: list[dict[str, str | int]] = []
        for name in worker_names(ray):
            try:
                described = ray.get(ray.get_actor(name).describe.remote(), timeout=timeout_s)
                rows.append({**described, "state": "running"})
            except ray.exceptions.RayError as exc:
                rows.append({"name": name, "state": "restarting", "error": type(exc).__name__})
        return rows
    finally:
        ray.shutdown()


def fleet_down(address: str) -> list[str]:
    """Drains and removes every worker actor and the placement groups that held them."""
    ray = connect(address)
    try:
        names = worker_names(ray)
        handles = [ray.get_actor(n) for n in names]
        stops = [h.stop.remote() for h in handles]  # all drain at once
        for name, stop in zip(names, stops, strict=True):
            try:
                ray.get(stop, timeout=DRAIN_TIMEOUT_S + 10)
            except ray.exceptions.RayError as exc:
                log.warning("%s did not drain (%s); killing it", name, type(exc).__name__)
        for handle in handles:
            ray.kill(handle, no_restart=True)
        for entry in ray.util.placement_group_table().values():
            if entry["name"].startswith(GROUP_PREFIX) and entry["state"] != "REMOVED":
                ray.util.remove_placement_group(ray.util.get_placement_group(entry["name"]))
        return names
    finally:
        ray.shutdown()
