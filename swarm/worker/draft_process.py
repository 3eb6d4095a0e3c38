"""A draft PC's process (`swarm join --model DRAFT.gguf --draft-for MODEL`): serves the Draft service until SIGTERM.

It joins the coordinator like any worker, as a draft for MODEL with its vocabulary's fingerprint,
so it shows in `swarm status` and the coordinator pairs it with MODEL's workers; it takes no
requests itself. A coordinator that serves MODEL with another vocabulary refuses it.
"""

from __future__ import annotations

import logging

import grpc

from swarm.engine.draft_runner import DraftRunner
from swarm.engine.llama_adapter import LlamaModel
from swarm.shared.malformed_requests import MalformedRequestInterceptor
from swarm.shared.serving import EXCLUSIVE_PORT, start_listening, stop_listening_for_signals, stop_on_signals
from swarm.shared.tls import server_credentials
from swarm.shared.vocab_fingerprint import vocab_fingerprint
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.worker.config import WorkerConfig
from swarm.worker.draft_servicer import DraftServicer
from swarm.worker.membership import Membership
from swarm.worker.metrics import WorkerCollector, WorkerCounters, process_load, serve_metrics
from swarm.worker.process import describe_worker

log = logging.getLogger(__name__)


async def serve_draft(config: WorkerConfig, model: LlamaModel) -> None:
    """Serves until stopped; raises JoinRefused when the coordinator will not take this draft."""
    runner = DraftRunner(model, config.slots, config.context_per_slot, config.threads, config.draft_lookahead)
    fingerprint = vocab_fingerprint(model.vocab_size, model.token_bytes)
    servicer = DraftServicer(runner, config.served_model_name, config.draft_for, fingerprint, config.token)
    server = grpc.aio.server(interceptors=[MalformedRequestInterceptor()], options=[EXCLUSIVE_PORT])
    pb_grpc.add_DraftServicer_to_server(servicer, server)
    runner.start()
    try:
        port = await start_listening(server, config.listen, server_credentials(config.tls) if config.tls else None)
        info = describe_worker(config, model, port, config.context_per_slot, fingerprint)
        metrics = await serve_metrics(
            config.metrics, WorkerCollector(info, lambda: WorkerCounters(process_load())), config.tls
        )
        membership = Membership(config.coordinator, config.token, info, process_load, config.tls)
        stop = stop_on_signals()
        log.info("serving %s on %s as a draft for %s", info.model, info.address, config.draft_for)
        try:
            async with membership.joined(stop):
                await stop.wait()
        finally:
            await server.stop(grace=1.0)
            await metrics.close()
            stop_listening_for_signals()
    finally:
        runner.stop()
        log.info("draft stopped after %d guesses", runner.guesses)
