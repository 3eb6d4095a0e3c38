"""The coordinator process: Redis, the gRPC and HTTP servers, and the background loops that own them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from pathlib import Path

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from swarm.coordinator.auth.api_keys import ApiKeyCheck
from swarm.coordinator.auth.http_auth import api_key_middleware
from swarm.coordinator.auth.interceptor import ApiKeyInterceptor
from swarm.coordinator.batch.runner import BatchRunner, request_slots
from swarm.coordinator.batch.service import BatchService
from swarm.coordinator.batch.servicer import BatchServicer
from swarm.coordinator.batch.store import BatchStore
from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.dispatcher import Dispatcher
from swarm.coordinator.embeddings import Embeddings
from swarm.coordinator.liveness import HeartbeatMonitor
from swarm.coordinator.ownership.request_leases import new_coordinator_id
from swarm.coordinator.planning.fleet_setup import build_fleet
from swarm.coordinator.planning.model_files import StageLibrary, add_model_files_servicer
from swarm.coordinator.planning.queued_demand import QueuedDemand
from swarm.coordinator.registry import WorkerRegistry
from swarm.coordinator.relay.worker_calls import WorkerCalls
from swarm.coordinator.request_store import RequestStore
from swarm.coordinator.service import InferenceService
from swarm.coordinator.servicers import InferenceServicer, RegistryServicer
from swarm.coordinator.tenancy.admin_servicer import AdminServicer
from swarm.coordinator.tenancy.admission import KeyAdmission
from swarm.coordinator.tenancy.key_admin import KeyAdmin
from swarm.coordinator.tenancy.key_limits import KeyLimits
from swarm.coordinator.tenancy.key_store import KeyStore
from swarm.coordinator.tenancy.key_watch import KeyWatch
from swarm.coordinator.tenancy.resolver import CallerResolver
from swarm.coordinator.usage.usage_servicer import UsageServicer
from swarm.coordinator.web.http_tracing import http_spans
from swarm.coordinator.web.server import build_http_app
from swarm.gguf_files.default_model import cache_dir
from swarm.shared import tracing
from swarm.shared.addresses import split_host_port
from swarm.shared.discovery import CoordinatorAdvertiser
from swarm.shared.malformed_requests import MalformedRequestInterceptor
from swarm.shared.redaction import redact_url
from swarm.shared.redis_connection import DurableWrites, close_redis, connect_redis
from swarm.shared.serving import EXCLUSIVE_PORT, start_listening, stop_on_signals
from swarm.shared.tls import server_credentials, ssl_context_for_http
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# On stop, open HTTP connections (a dashboard's event stream, a client's idle keep-alive) get this
# long to finish; aiohttp's default, 60 s, outlasts systemd's and the tests' patience, after which
# the coordinator is killed before it logs its summary.
HTTP_SHUTDOWN_TIMEOUT_S = 2.0


def stage_library_root(config: CoordinatorConfig) -> Path:
    """Where served stage files live: --stages-dir, else (for planned splits) the user's cache."""
    return Path(config.stages_dir) if config.stages_dir else cache_dir() / "plans"


async def serve_coordinator(config: CoordinatorConfig) -> None:
    started = time.monotonic()
    redis = await connect_redis(config.redis_url)
    registry = WorkerRegistry(redis, config.heartbeat_ttl_s)
    coordinator_id = new_coordinator_id()
    durable = DurableWrites.for_client(redis)  # waits for a replica under Sentinel only
    store = RequestStore(redis, coordinator_id, config.lease_ttl_s, durable=durable)
    calls = WorkerCalls(config.token, config.tls)
    monitor = HeartbeatMonitor(registry, config.poll_interval_s, config.forget_worker_after_s)
    library_root = stage_library_root(config)
    demand, plans = await build_fleet(config, redis, library_root)
    loads = QueuedDemand(demand, config.model_load_wait_s) if demand is not None else None
    dispatcher = Dispatcher(config, store, registry, monitor, calls, loads=loads)
    monitor.on_change = dispatcher.wake
    key_store = KeyStore(redis)
    admission = KeyAdmission(KeyLimits(redis))
    key_watch = KeyWatch(key_store, dispatcher.requests_by_tenant, dispatcher.end_requests)
    embeddings = Embeddings(dispatcher.views, dispatcher.fresh_views, calls)
    service = InferenceService(config, dispatcher, registry, store, demand, plans, admission, embeddings)
    batch_store = BatchStore(redis, config.batch_limits, durable)
    batch_runner = BatchRunner(
        batch_store,
        service,
        lambda: request_slots(dispatcher.views()),
        config.batch_reclaim_after_s,
        config.poll_interval_s,
        key_store,
    )
    await monitor.refresh()
    await dispatcher.recover()

    callers = CallerResolver(ApiKeyCheck(config.api_keys), key_store)
    server = grpc.aio.server(
        interceptors=[
            MalformedRequestInterceptor(),
            *([ApiKeyInterceptor(callers)] if callers.required else []),
            *tracing.server_interceptors({"/swarm.v1.Inference/Generate": "coordinator.Generate"}),
        ],
        options=[EXCLUSIVE_PORT, ("grpc.max_receive_message_length", config.limits.max_message_bytes)],
    )
    pb_grpc.add_InferenceServicer_to_server(InferenceServicer(service), server)
    pb_grpc.add_RegistryServicer_to_server(RegistryServicer(service, config.token, config.heartbeat_interval_s), server)
    batch_service = BatchService(batch_store, config.batch_limits, config.limits)
    pb_grpc.add_BatchServicer_to_server(BatchServicer(batch_service), server)
    key_admin = KeyAdmin(key_store, callers.required, on_revoke=key_watch.check_soon)
    pb_grpc.add_AdminServicer_to_server(AdminServicer(key_admin), server)
    pb_grpc.add_UsageServicer_to_server(UsageServicer(store.usage), server)
    if config.stages_dir or config.plan_model:
        add_model_files_servicer(server, StageLibrary(library_root), config.token)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    served = (
        "Inference",
        "Registry",
        "Batch",
        "Admin",
        "Usage",
        *(("ModelFiles",) if config.stages_dir or config.plan_model else ()),
    )
    service_names = [pb.DESCRIPTOR.services_by_name[n].full_name for n in served]
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    grpc_port = await start_listening(server, config.listen, server_credentials(config.tls) if config.tls else None)
    for name in ["", *service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    http_runner: web.AppRunner | None = None
    if config.http:
        http_app = build_http_app(
            service,
            [api_key_middleware(callers), *http_spans()],
            config.limits.max_message_bytes,
            batch_service.list,
            redis_ping=redis.ping,
            key_admin=key_admin,
        )
        http_runner = web.AppRunner(
            http_app,
            access_log=None,
            keepalive_timeout=config.http_idle_timeout_s,  # bounds a request's headers too, never its answer
            shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT_S,
        )
        await http_runner.setup()
        host, port = split_host_port(config.http)
        await web.TCPSite(
            http_runner, host, port, ssl_context=ssl_context_for_http(config.tls) if config.tls else None
        ).start()
    advertiser: CoordinatorAdvertiser | None = None
    if config.advertise:
        advertiser = CoordinatorAdvertiser(config.listen, grpc_port, config.http, config.swarm_name)
        advertiser.start()

    # Long-lived setup objects need no more collection; a token relay allocates many
    # short-lived objects, so collect the young generation less often.
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    tasks = [
        asyncio.create_task(monitor.run(), name="heartbeat-monitor"),
        asyncio.create_task(dispatcher.run(), name="dispatcher"),
        asyncio.create_task(batch_runner.run(), name="batch-runner"),
        asyncio.create_task(admission.run(), name="stream-leases"),
        asyncio.create_task(key_watch.run(), name="key-watch"),
    ]
    stop = stop_on_signals()
    log.info(
        "coordinator %s listening on %s (gRPC)%s, Redis %s%s%s",
        coordinator_id,
        config.listen,
        f" and {config.http} (HTTP)" if config.http else "",
        redact_url(config.redis_url),
        ", TLS" + (" with client certificates" if config.tls.ca else "") if config.tls else "",
        f", {len(config.api_keys)} client API keys" if config.api_keys else "",
    )
    try:
        waiters = [asyncio.create_task(stop.wait()), *tasks]
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiters[0]:
                task.result()  # a background loop died: surface its error
    finally:
        if advertiser is not None:
            await advertiser.close()  # first, so no worker finds a coordinator that is going away
        await health_servicer.enter_graceful_shutdown()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        dispatcher.begin_shutdown()  # streams the server now breaks off leave their requests to the next coordinator
        await server.stop(grace=2.0)
        await batch_runner.shutdown()
        await dispatcher.shutdown()
        if http_runner is not None:
            await http_runner.cleanup()
        await calls.close()
        queued = await store.depth()
        await close_redis(redis)
        log.info(
            "coordinator stopped after %.0f s: %d requests completed, %d failed, %d left queued in Redis",
            time.monotonic() - started,
            dispatcher.completed,
            dispatcher.failed,
            queued,
        )
