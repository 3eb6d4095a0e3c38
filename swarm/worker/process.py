"""The worker process: load the model, serve the Worker service, join, heartbeat, drain and leave."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from functools import partial

import grpc
import psutil

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.embedder import Embedder
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.speculation import SpeculationBudget
from swarm.engine.stage_executor import StageExecutor
from swarm.shared import tracing
from swarm.shared.addresses import reachable_host, split_host_port
from swarm.shared.malformed_requests import MalformedRequestInterceptor
from swarm.shared.plan_messages import StageMeasurement
from swarm.shared.serving import EXCLUSIVE_PORT, start_listening, stop_listening_for_signals, stop_on_signals
from swarm.shared.tls import server_credentials
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad
from swarm.shared.vocab_fingerprint import vocab_fingerprint
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.worker.config import WorkerConfig
from swarm.worker.coordinators import dialed_host_port
from swarm.worker.draft_link import DraftLink
from swarm.worker.membership import Membership
from swarm.worker.metrics import WorkerCollector, WorkerCounters, serve_metrics
from swarm.worker.owner_backoff import BackoffPolicy, Phase
from swarm.worker.owner_control import LocalStatus, OwnerActions, default_control_dir, owner_socket
from swarm.worker.owner_hours import WhenMode
from swarm.worker.owner_load import OwnerThresholds
from swarm.worker.owner_priority import SessionWeight
from swarm.worker.owner_state import OwnerState, Usage
from swarm.worker.owner_watch import OwnerWatch
from swarm.worker.pipeline_head import PipelineHead, StageLink
from swarm.worker.servicer import WorkerServicer
from swarm.worker.stage_measuring import DecodeMeter, TimedStageExecutor, probing, stage_measurement

log = logging.getLogger(__name__)


REASSIGN_GRACE_S = 3.0


def model_vocab_fingerprint(model: LlamaModel) -> str:
    """The model's vocab_fingerprint; "" for a pipeline's middle stage, which holds no vocabulary (llama.cpp
    aborts the process when asked for its token texts) and never meets a draft."""
    stage = model.stage
    if stage is not None and 0 < stage.index < stage.count - 1:
        return ""
    return vocab_fingerprint(model.vocab_size, model.token_bytes)


def describe_worker(config: WorkerConfig, model: LlamaModel, port: int, context_length: int, vocab: str) -> WorkerInfo:
    """What this worker tells the coordinator about itself when it joins; vocab: model_vocab_fingerprint(model),
    which its caller has computed already (about 20 ms for Gemma's 262,144 tokens)."""
    address = config.advertise or f"{reachable_host(dialed_host_port(config.coordinators[0]))}:{port}"
    _, advertised_port = split_host_port(address)
    return WorkerInfo(
        worker_id=WorkerId(config.worker_id or f"{socket.gethostname()}-{advertised_port}"),
        address=address,
        model=config.served_model_name,
        context_length=context_length,
        slots=config.slots,
        threads=config.threads,
        hostname=socket.gethostname(),
        model_bytes=model.size_bytes,
        chat_template=model.metadata("tokenizer.chat_template") or "",
        draft_for=config.draft_for,
        vocab_fingerprint=vocab,
        **stage_fields(model),
    )


def stage_executor(
    config: WorkerConfig, model: LlamaModel, *, first: bool, last: bool, meter: DecodeMeter | None = None
) -> StageExecutor:
    """A stage's executor; with a meter, one that times its decode steps into it."""
    return (StageExecutor if meter is None else partial(TimedStageExecutor, meter))(
        model,
        first=first,
        last=last,
        slots=config.slots,
        context_per_slot=config.context_per_slot,
        threads=config.threads,
    )


def stage_fields(model: LlamaModel) -> dict[str, int]:
    """The WorkerInfo fields that say which stage of which layers this worker serves."""
    stage = model.stage
    if stage is None or stage.count == 1:
        return {}
    return {
        "stage_index": stage.index,
        "stage_count": stage.count,
        "layer_start": stage.layer_start,
        "layer_end": stage.layer_end,
    }


def build_engine(config: WorkerConfig, model: LlamaModel, meter: DecodeMeter | None = None) -> BatchEngine:
    """The engine of a whole model, or of a pipeline's first stage feeding config.next_stage."""
    engine_config = EngineConfig(
        slots=config.slots,
        context_per_slot=config.context_per_slot,
        threads=config.threads,
        batch_size=max(512, config.slots),
        idle_priority=config.hours.mode is WhenMode.IDLE,
        speculate=config.speculate,
        speculation=SpeculationBudget.eager() if config.speculate_always else SpeculationBudget(),
        first_token_pause_s=config.first_token_pause_ms / 1000,
    )
    # Paired with a draft PC later, if the coordinator finds one for its model (see draft_link).
    drafts = DraftLink(model_vocab_fingerprint(model), config.token, config.tls)
    stage = model.stage
    if stage is None or stage.count == 1:  # a one-stage split is the whole model
        return BatchEngine(model, engine_config, drafts=drafts)
    if stage.index != 0 or not config.next_stage:
        raise ValueError(
            f"{model.path.name} is stage {stage.index + 1} of {stage.count}: a first stage needs --next-stage"
        )
    executor = stage_executor(config, model, first=True, last=False, meter=meter)
    in_flight = config.steps_in_flight or stage.count
    link = StageLink(config.next_stage, config.token, config.stage_timeout_s, tls=config.tls, stage=stage)
    head = PipelineHead(executor, link, config.hidden_bfloat16, in_flight, measured_groups=not config.steps_in_flight)
    return BatchEngine(model, engine_config, forward=head, drafts=drafts)


def owner_actions(
    config: WorkerConfig,
    info: WorkerInfo,
    owner: OwnerState,
    servicer: WorkerServicer,
    membership: Membership,
    threads: Callable[[], int],
) -> OwnerActions:
    """What `swarm local`, `swarm pause` and `swarm resume` do to this worker."""

    def status() -> LocalStatus:
        today = owner.today()
        return LocalStatus(
            worker_id=servicer.worker_id or info.worker_id,
            model=info.model,
            coordinator=membership.coordinator,
            state="leaving" if servicer.draining else owner.away() or "serving",
            when=config.hours.text,
            running=servicer.active,
            slots=config.slots,
            tokens_today=today.tokens,
            cpu_hours_today=today.cpu_hours,
            energy_wh_today=today.energy_wh,
            threads=threads(),
            max_threads=config.threads,
            limits=limits_text(config),
        )

    def pause() -> int:
        # Refuse new runs first, so a handed-back request cannot land here again.
        owner.paused = True
        membership.heartbeat_soon()
        handed_back = servicer.hand_back()
        log.info("paused by its owner: handed %d running requests back", handed_back)
        return handed_back

    def resume() -> None:
        owner.paused = False
        membership.heartbeat_soon()
        log.info("resumed by its owner: taking work again")

    return OwnerActions(status, pause, resume)


def limits_text(config: WorkerConfig) -> str:
    described = config.limits.describe(os.cpu_count() or 1)
    return f"{described}, kept by {config.limits_kept_by}" if described else ""


async def threads_set(engine: BatchEngine, threads: int) -> None:
    await asyncio.wrap_future(engine.set_threads(threads))


async def model_loaded(engine: BatchEngine, loaded: bool) -> None:
    """Frees the engine's model or loads it again, waiting on the engine thread's word."""
    await asyncio.wrap_future(engine.set_loaded(loaded))


async def serve_worker(config: WorkerConfig, engine: BatchEngine, meter: DecodeMeter | None = None) -> bool:
    """Serves until stopped or moved by the coordinator's plan; True when moved. A first stage's meter and
    link to the next stage are reported with its heartbeats."""
    async with probing(config.next_stage if meter is not None else "", config.token, config.tls) as prober:
        measure = None if meter is None else partial(stage_measurement, meter, prober)
        return await _serve_worker(config, engine, measure)


async def _serve_worker(
    config: WorkerConfig, engine: BatchEngine, measure: Callable[[], StageMeasurement] | None
) -> bool:
    started = time.monotonic()
    process = psutil.Process()

    def usage() -> Usage:
        cpu = process.cpu_times()
        return Usage(engine.stats().tokens_generated, cpu.user + cpu.system)

    thresholds = OwnerThresholds(others_share=config.owner_cpu, memory_available=config.owner_memory)
    watch = OwnerWatch(thresholds, BackoffPolicy(quiet_s=config.owner_quiet_s), most_threads=config.threads)
    owner = OwnerState(config.hours, usage=usage, watts=config.watts, threads=config.threads, load=watch.away)
    servicer = WorkerServicer(engine, config.served_model_name, config.token, owner.away)
    if not stage_fields(engine.model):  # a whole model embeds; its embedding context opens on the first call
        servicer.embedder = Embedder(engine.model, config.threads)
    spans = tracing.server_interceptors({"/swarm.v1.Worker/Run": "worker.Run"})
    server = grpc.aio.server(interceptors=[MalformedRequestInterceptor(), *spans], options=[EXCLUSIVE_PORT])
    pb_grpc.add_WorkerServicer_to_server(servicer, server)
    port = await start_listening(server, config.listen, server_credentials(config.tls) if config.tls else None)
    drafts = engine.drafts if isinstance(engine.drafts, DraftLink) else None
    vocab = drafts.fingerprint if drafts is not None else model_vocab_fingerprint(engine.model)
    info = describe_worker(config, engine.model, port, engine.context_per_slot, vocab)

    def current_load() -> WorkerLoad:
        owner.mark_day()  # so "today" starts within a heartbeat of midnight
        stats = engine.stats()
        return WorkerLoad(
            slots_busy=stats.slots_busy,
            tokens_per_second=stats.tokens_per_second,
            rss_bytes=process.memory_info().rss,
            ram_available_bytes=psutil.virtual_memory().available,
            tokens_generated=stats.tokens_generated,
            prompt_tokens=stats.prompt_tokens,
            cached_prompt_tokens=stats.cached_prompt_tokens,
            away=owner.away(),
            busy_seconds=stats.step_seconds,  # its decode steps run whenever a sequence does
            watts=config.watts,
            cost_per_hour=config.cost_per_hour,
        )

    def counters() -> WorkerCounters:
        stats = engine.stats()
        return WorkerCounters(
            current_load(),
            servicer.accepted,
            servicer.active,
            stats.steps,
            stats.step_seconds,
            stats.proposed_tokens,
            stats.accepted_tokens,
        )

    metrics = await serve_metrics(config.metrics, WorkerCollector(info, counters), config.tls)
    membership = Membership(config.coordinator, config.token, info, current_load, config.tls, measure)
    if drafts is not None:
        drafts.bind(asyncio.get_running_loop())
        membership.on_draft = drafts.use
    stop = stop_on_signals()
    actions = owner_actions(config, info, owner, servicer, membership, lambda: engine.threads)
    log.info("serving %s on %s (%d slots, %d threads)", info.model, info.address, config.slots, config.threads)
    watching: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
    weight = SessionWeight() if config.hours.mode is WhenMode.IDLE else None
    if weight is not None:
        weight.computing(True)

        def load_changed() -> None:
            membership.heartbeat_soon()
            weight.computing(watch.state.phase is not Phase.AWAY)

        set_loaded = partial(model_loaded, engine) if engine.can_unload else None
        set_threads = partial(threads_set, engine) if engine.can_unload else None  # a whole model's only
        watching = watch.watching(servicer.hand_back, load_changed, set_loaded, set_threads)
    try:
        async with (
            owner_socket(default_control_dir(), info.worker_id, actions),
            watching,
            membership.joined(stop) as worker_id,
        ):
            if worker_id is not None:
                servicer.worker_id = worker_id
                await stop.wait()
            servicer.draining = True
            if weight is not None:  # leaving promptly matters more now than the owner's share
                weight.computing(False)
            if worker_id is not None:
                await membership.announce_drain()
            # Moved by the plan: its pipeline may be broken already, so running work moves on sooner.
            grace_s = min(config.drain_timeout_s, REASSIGN_GRACE_S) if membership.reassigned else config.drain_timeout_s
            log.info("leaving: waiting up to %.0f s for %d running requests", grace_s, servicer.active)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(servicer.idle.wait(), grace_s)
            if not servicer.idle.is_set():
                log.info("handing %d unfinished requests back to the coordinator", servicer.hand_back())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(servicer.idle.wait(), 5.0)
    finally:
        if drafts is not None:
            await drafts.close()
        servicer.end_relays()
        await server.stop(grace=1.0)
        if servicer.embedder is not None:  # before the model is freed
            await asyncio.to_thread(servicer.embedder.close)
        await metrics.close()
        stats = engine.stats()
        log.info(
            "worker %s stopped after %.0f s: %d tokens generated, %d of %d prompt tokens from cache",
            servicer.worker_id or info.worker_id,
            time.monotonic() - started,
            stats.tokens_generated,
            stats.cached_prompt_tokens,
            stats.prompt_tokens,
        )
        stop_listening_for_signals()
    return membership.reassigned and not stop.by_signal  # told to stop while being moved: it stops
