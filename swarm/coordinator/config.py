"""CoordinatorConfig: everything one coordinator process needs, validated when built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from swarm.coordinator.auth.api_keys import check_api_key_format
from swarm.shared.addresses import split_host_port
from swarm.shared.batch_types import BatchLimits
from swarm.shared.discovery import check_swarm_name
from swarm.shared.redis_connection import check_redis_url
from swarm.shared.tls import TlsFiles
from swarm.shared.validation import RequestLimits


@dataclass(frozen=True)
class CoordinatorConfig:
    listen: str = "0.0.0.0:50051"
    http: str = "0.0.0.0:8080"  # empty: no HTTP endpoint
    # A connection must send a whole request's headers within this long, and an idle keep-alive connection
    # closes after it: a half-sent request cannot hold its socket open for aiohttp's default 75 s.
    http_idle_timeout_s: float = 15.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    token: str = ""  # workers must present it to join
    default_model: str = ""  # empty: the model most workers serve
    heartbeat_ttl_s: float = 3.0
    heartbeat_interval_s: float = 1.0
    poll_interval_s: float = 0.25  # registry refresh and queue poll pace
    no_worker_wait_s: float = 10.0  # how long a request waits for a worker of its model to appear
    worker_idle_timeout_s: float = 60.0  # a worker that sends nothing for this long has failed
    forget_worker_after_s: float = 600.0
    max_queue: int = 10_000  # requests waiting beyond this are refused with RESOURCE_EXHAUSTED
    # While several tenants are active, the most of a model's slots one tenant may hold (fairness.slot_share);
    # 1.0: all but the last free one.
    tenant_slot_share: float = 1.0
    max_attempts: int = 3  # dispatches of one request before it fails
    stages_dir: str = ""  # a folder of `swarm split` outputs (one sub-folder per model) served to workers
    tls: TlsFiles | None = None  # None: plaintext gRPC and HTTP
    api_keys: tuple[str, ...] = ()  # empty: clients need no key
    advertise: bool = True  # publish _swarm._tcp.local. over mDNS so `swarm join` finds this coordinator
    swarm_name: str = ""  # advertised too: workers of several swarms on one LAN pick theirs by it
    plan_model: str = ""  # a whole GGUF the coordinator plans replicas and stages of for `swarm join --auto` workers
    plan_model_name: str = ""  # the name clients use for it (default: the file name without .gguf)
    plan_stages: int = 0  # 0: as few stages as the workers' memory allows; K: always K-stage pipelines
    # More GGUFs served from the same `--auto` nodes, as NAME=PATH or PATH: each node serves one model at a
    # time, and a request for a model no node serves moves a node to it (model_choice).
    more_models: tuple[str, ...] = ()
    pinned_models: tuple[str, ...] = ()  # kept loaded: never evicted for another model
    model_residency_s: float = 30.0  # a node serves a model at least this long before it may be moved
    model_load_wait_s: float = 180.0  # how long a request for a planned model waits in the queue while it loads
    limits: RequestLimits = field(default_factory=RequestLimits)
    batch_limits: BatchLimits = field(default_factory=BatchLimits)
    batch_reclaim_after_s: float = 60.0  # a batch line untouched this long was left by a dead coordinator
    lease_ttl_s: float = 2.0  # a request whose coordinator renewed nothing this long is taken over by another
    # A request read only as a whole (non-streaming HTTP, a batch line) gets its pieces from the worker
    # this often instead of every step: a message per second instead of per token on every hop.
    whole_answer_piece_interval_s: float = 1.0

    def planned_models(self) -> list[tuple[str, str]]:
        """(name, file spec) of --plan-model and each --add-model, the first being the primary."""
        if not self.plan_model:
            return []
        models = [(self.plan_model_name or Path(self.plan_model).name.removesuffix(".gguf"), self.plan_model)]
        for entry in self.more_models:
            name, _, spec = entry.rpartition("=")
            models.append((name or Path(spec).name.removesuffix(".gguf"), spec))
        return models

    def __post_init__(self) -> None:
        split_host_port(self.listen)
        if self.http:
            split_host_port(self.http)
        check_redis_url(self.redis_url)
        if self.tls is not None:
            self.tls.require_server()
        check_api_key_format(self.api_keys)
        if self.heartbeat_ttl_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat TTL must be longer than the heartbeat interval")
        if not 0 <= self.whole_answer_piece_interval_s < self.worker_idle_timeout_s / 2:
            raise ValueError(
                "whole_answer_piece_interval_s must be >= 0 and well under worker_idle_timeout_s "
                f"(a held worker would look stalled), got {self.whole_answer_piece_interval_s}"
            )
        if self.http_idle_timeout_s <= 0:
            raise ValueError(f"--http-idle-timeout must be > 0 seconds, got {self.http_idle_timeout_s}")
        if self.lease_ttl_s <= 0:
            raise ValueError(f"lease_ttl_s must be > 0 seconds, got {self.lease_ttl_s}")
        if self.batch_reclaim_after_s <= 0:
            raise ValueError(f"--batch-reclaim-after must be > 0 seconds, got {self.batch_reclaim_after_s}")
        names = [name for name, _ in self.planned_models()]
        repeated = next((name for name in names if names.count(name) > 1), None)
        if repeated is not None:
            raise ValueError(f"two planned models are named {repeated!r}: name one with --add-model NAME=PATH")
        unknown = next((name for name in self.pinned_models if name not in names), None)
        if unknown is not None:
            raise ValueError(f"--pin-model {unknown!r} is none of the planned models ({', '.join(names)})")
        if (self.more_models or self.pinned_models) and not self.plan_model:
            raise ValueError("--add-model and --pin-model need --plan-model (the first of the models)")
        if self.model_residency_s < 0 or self.model_load_wait_s <= 0:
            raise ValueError("model_residency_s must be >= 0 and model_load_wait_s > 0")
        if self.plan_stages < 0:
            raise ValueError(f"--plan-stages must be >= 0, got {self.plan_stages}")
        check_swarm_name(self.swarm_name)
        if self.max_queue < 1:
            raise ValueError(f"--max-queue must be at least 1, got {self.max_queue}")
        if not 0 < self.tenant_slot_share <= 1:
            raise ValueError(f"--tenant-slot-share must be in (0, 1], got {self.tenant_slot_share}")
        if self.no_worker_wait_s < 0 or self.max_attempts < 1:
            raise ValueError("no_worker_wait_s must be >= 0 and max_attempts >= 1")
