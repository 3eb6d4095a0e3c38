"""A later-stage worker process: serves its layers of a pipeline to the stage before it until SIGTERM.

It joins the coordinator like any worker so the pipeline shows in `swarm status`, but takes
no requests itself: only the first stage does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import grpc

from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.stage_executor import StageExecutor
from swarm.shared.malformed_requests import MalformedRequestInterceptor
from swarm.shared.plan_messages import StageMeasurement
from swarm.shared.serving import EXCLUSIVE_PORT, start_listening, stop_listening_for_signals, stop_on_signals
from swarm.shared.tls import server_credentials
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.worker.config import WorkerConfig
from swarm.worker.membership import Membership
from swarm.worker.metrics import WorkerCollector, WorkerCounters, process_load, serve_metrics
from swarm.worker.process import describe_worker, model_vocab_fingerprint, stage_executor
from swarm.worker.stage_measuring import DecodeMeter, probing, stage_measurement
from swarm.worker.stage_servicer import StageServicer

log = logging.getLogger(__name__)


def build_stage(config: WorkerConfig, model: LlamaModel, meter: DecodeMeter | None = None) -> StageExecutor:
    """The executor of stage I > 0 of a split model; raises ValueError when the flags do not fit the file."""
    stage = model.stage
    if stage is None or stage.index == 0:
        raise ValueError(f"{model.path.name} is not a later pipeline stage")
    last = stage.index == stage.count - 1
    if not last and not config.next_stage:
        raise ValueError(f"{model.path.name} is stage {stage.index + 1} of {stage.count}: it needs --next-stage")
    return stage_executor(config, model, first=False, last=last, meter=meter)


async def serve_stage(config: WorkerConfig, executor: StageExecutor, meter: DecodeMeter | None = None) -> bool:
    """Serves until stopped or moved by the coordinator's plan; True when moved. The meter and the link to
    the next stage are reported with its heartbeats."""
    async with probing(config.next_stage if meter is not None else "", config.token, config.tls) as prober:
        measure = None if meter is None else partial(stage_measurement, meter, prober)
        return await _serve_stage(config, executor, measure)


async def _serve_stage(
    config: WorkerConfig, executor: StageExecutor, measure: Callable[[], StageMeasurement] | None
) -> bool:
    servicer = StageServicer(
        executor, "" if executor.last else config.next_stage, config.token, config.stage_timeout_s, tls=config.tls
    )
    server = grpc.aio.server(interceptors=[MalformedRequestInterceptor()], options=[EXCLUSIVE_PORT])
    pb_grpc.add_StageServicer_to_server(servicer, server)
    port = await start_listening(server, config.listen, server_credentials(config.tls) if config.tls else None)
    info = describe_worker(
        config, executor.model, port, executor.context_per_slot, model_vocab_fingerprint(executor.model)
    )
    metrics = await serve_metrics(
        config.metrics, WorkerCollector(info, lambda: WorkerCounters(process_load())), config.tls
    )
    membership = Membership(config.coordinator, config.token, info, process_load, config.tls, measure)
    stop = stop_on_signals()
    log.info(
        "serving %s of %s on %s%s",
        info.role,
        info.model,
        info.address,
        f", next stage {config.next_stage}" if config.next_stage else " (last stage)",
    )
    try:
        async with membership.joined(stop):
            await stop.wait()
    finally:
        await server.stop(grace=1.0)
        await servicer.close()
        await metrics.close()
        executor.close_all()
        stop_listening_for_signals()
    return membership.reassigned and not stop.by_signal  # told to stop while being moved: it stops
