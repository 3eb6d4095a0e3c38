"""WorkerConfig: everything one worker process needs, validated when built."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from swarm.shared.addresses import split_host_port
from swarm.shared.tls import TlsFiles
from swarm.worker.coordinators import coordinator_list
from swarm.worker.metrics import metrics_bind_address
from swarm.worker.owner_hours import ALWAYS, OwnerHours
from swarm.worker.owner_limits import NO_LIMITS, KeptBy, OwnerLimits


@dataclass(frozen=True)
class WorkerConfig:
    coordinator: str  # HOST:PORT, several comma-separated (`a:50051,b:50051`), or `dns:///NAME:PORT`
    model_path: Path
    threads: int = 2
    slots: int = 8
    listen: str = "0.0.0.0:0"  # port 0: any free port
    advertise: str = ""  # address the coordinator dials; empty: derived from the route to it
    token: str = ""
    model_name: str = ""  # empty: the model file's name without .gguf
    context_per_slot: int = 2048
    worker_id: str = ""
    next_stage: str = ""  # a pipeline stage file: HOST:PORT of the stage after this one
    hidden_bfloat16: bool = False  # a first stage: send hidden states as bfloat16
    # A first stage: steps sent before the oldest one's tokens are back; 0: up to one per stage, as measured.
    steps_in_flight: int = 0
    tls: TlsFiles | None = None  # None: plaintext; else TLS on its server and on every channel it opens
    drain_timeout_s: float = 30.0
    metrics: str = ""  # HOST:PORT serving Prometheus metrics at /metrics; empty: none
    stage_timeout_s: float = 30.0  # a pipeline step the next stage has not answered by then fails
    hours: OwnerHours = ALWAYS  # when the PC's owner lets it take work (`--when`)
    watts: float = 0.0  # what the PC draws beyond idle with the worker busy, for `swarm local`; 0: unknown
    cost_per_hour: float = 0.0  # what an hour of the worker busy costs its owner, for cost per token; 0: unknown
    owner_cpu: float = 0.30  # `--when idle`: others using more than this share of its cores = the owner is busy
    owner_quiet_s: float = 20.0  # `--when idle`: how long the PC must be quiet before it serves again
    owner_memory: float = 0.10  # `--when idle`: less than this share of RAM available = memory is short
    limits: OwnerLimits = NO_LIMITS  # `--max-cpu`, `--max-memory`; threads is already within them
    limits_kept_by: KeptBy = KeptBy.NOTHING
    speculate: bool = False  # a whole model or a pipeline head verifies prompt-lookup proposals (`--speculate on|off`)
    speculate_always: bool = False  # `--speculate always`: every proposal verified, paying or not (to measure them)
    draft_for: str = ""  # a draft PC: the model whose workers it proposes tokens to (`--draft-for`)
    draft_lookahead: int = 8  # a draft PC: how many tokens it guesses ahead of each sequence
    first_token_pause_ms: float = 5.0  # the engine's wait after a first token (see first_token_pause); 0: none

    def __post_init__(self) -> None:
        if self.speculate_always and not self.speculate:
            raise ValueError("speculate_always needs speculate: it verifies every proposal of a speculating worker")
        if not 0 <= self.first_token_pause_ms <= 100:
            raise ValueError("first_token_pause_ms (--first-token-pause-ms) must be between 0 and 100")
        coordinator_list(self.coordinator)
        split_host_port(self.listen)
        if self.advertise:
            split_host_port(self.advertise)
        if self.next_stage:
            split_host_port(self.next_stage)
        if self.metrics:
            metrics_bind_address(self.metrics)
        if self.tls is not None:
            self.tls.require_server()
        if self.watts < 0:
            raise ValueError("--watts cannot be negative")
        if self.cost_per_hour < 0:
            raise ValueError("--cost-per-hour cannot be negative")
        if not 0 < self.owner_cpu <= 1:
            raise ValueError("--owner-cpu must be above 0% and at most 100%")
        if not 0 < self.owner_memory < 1:
            raise ValueError("--owner-memory must be above 0% and below 100%")
        if self.owner_quiet_s < 0:
            raise ValueError("--owner-quiet cannot be negative")
        if self.threads < 1:
            raise ValueError("--threads must be at least 1")
        if self.slots < 1:
            raise ValueError("--slots must be at least 1")
        if self.steps_in_flight < 0:
            raise ValueError("--steps-in-flight must be 0 (one per stage) or more")
        if self.draft_lookahead < 1:
            raise ValueError("--draft-lookahead must be at least 1")
        if self.context_per_slot < 16:
            raise ValueError("--context must be at least 16 tokens")

    @property
    def coordinators(self) -> tuple[str, ...]:
        return coordinator_list(self.coordinator)

    @property
    def served_model_name(self) -> str:
        if self.model_name:
            return self.model_name
        name = self.model_path.name.removesuffix(".gguf")
        # A stage file (NAME.stageI-of-K.gguf) serves the model it was cut from.
        return re.sub(r"\.stage\d+-of-\d+$", "", name)
