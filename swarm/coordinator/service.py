"""InferenceService: what the coordinator does for clients and workers, free of any wire format."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

from swarm.coordinator.config import CoordinatorConfig
from swarm.coordinator.dispatcher import Dispatcher, queue_full
from swarm.coordinator.draft_pairing import draft_refusal, paired_draft
from swarm.coordinator.embeddings import Embeddings
from swarm.coordinator.fairness.request_tenant import with_tenant
from swarm.coordinator.metrics import CoordinatorMetrics, metric_model
from swarm.coordinator.planning.plan_store import PlanStore
from swarm.coordinator.planning.shared_demand import SharedDemand
from swarm.coordinator.registry import Standing, WorkerRegistry
from swarm.coordinator.request_identity import owner_of_key, request_fingerprint, scoped_request_id
from swarm.coordinator.request_store import RequestStore
from swarm.coordinator.routing import default_model
from swarm.coordinator.tenancy.admission import KeyAdmission, check_model
from swarm.coordinator.tenancy.caller import OPEN_ACCESS, Access
from swarm.gguf_files.chat_template import file_chat_template
from swarm.shared import tracing
from swarm.shared.embedding_messages import EmbedRequest, EmbedResult, check_inputs
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.grammar_check import check_grammar
from swarm.shared.plan_messages import AssignmentReply, NodeOffer, StageMeasurement, offer_problem
from swarm.shared.types import (
    GenerationEvent,
    GenerationRequest,
    ModelSummary,
    RawRequest,
    SwarmStatus,
    WorkerId,
    WorkerInfo,
    WorkerLoad,
    WorkerView,
)
from swarm.shared.usage_types import UsageReport
from swarm.shared.validation import InvalidRequest, check_fits_context, new_request_id, validate_request

log = logging.getLogger(__name__)


class InferenceService:
    def __init__(
        self,
        config: CoordinatorConfig,
        dispatcher: Dispatcher,
        registry: WorkerRegistry,
        store: RequestStore,
        demand: SharedDemand | None = None,  # the planned models' fleet, its demand shared by every coordinator
        plans: Mapping[str, PlanStore] | None = None,
        admission: KeyAdmission | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        self._config = config
        self._dispatcher = dispatcher
        self._registry = registry
        self._store = store
        self._demand = demand
        self._fleet = demand.fleet if demand is not None else None
        self._plans = dict(plans or {})  # model -> where its plan is kept
        self._planned_templates: dict[str, str] = {}  # planned model -> its file's chat template
        self._admission = admission
        self._embeddings = embeddings
        self._started = time.monotonic()
        self.metrics = CoordinatorMetrics(dispatcher)

    # ------------------------------------------------------------ clients

    async def generate(
        self, raw: RawRequest, api_key: str = "", *, whole_answer: bool = False, access: Access = OPEN_ACCESS
    ) -> AsyncIterator[GenerationEvent]:
        """Runs the request, or follows the one its id already names among api_key's requests.

        whole_answer: the caller reads only the complete answer, so its worker may send pieces in bunches.

        api_key is the key the caller was let in with ("": the batch runner, or a coordinator
        without keys); its requests' ids are its own (request_identity). access holds a created key's new
        requests to its model list and limits (tenancy.admission).
        """

        def model() -> str:
            return metric_model(raw.model, self._dispatcher.views(), self._config.default_model)

        async for event in self.metrics.observe(self._generate(raw, api_key, whole_answer, access), model):
            yield event

    async def _generate(
        self, raw: RawRequest, api_key: str, whole_answer: bool, access: Access
    ) -> AsyncIterator[GenerationEvent]:
        try:
            request = validate_request(raw, self._config.limits)
            if request.sampling.grammar:
                await asyncio.to_thread(check_grammar, request.sampling.grammar)
        except InvalidRequest as exc:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        # Keyless calls share one namespace: the batch runner's (ids starting with batch-, which no client
        # may send) and, on a coordinator without keys, every client's.
        owner = owner_of_key(api_key) if api_key and self._config.api_keys else ""
        request = replace(
            with_tenant(request, access.caller),
            request_id=scoped_request_id(owner, request.request_id),
            fingerprint=request_fingerprint(raw),
            traceparent=tracing.traceparent(),
            piece_interval_s=self._config.whole_answer_piece_interval_s if whole_answer else 0.0,
        )
        # A retry with an id this swarm has attaches to it. Looked up first only where it must be: a resume
        # (NOT_FOUND if unknown) or a key with limits (its admission counts against them). Otherwise the id
        # is checked in the round trip that queues the request (Dispatcher.submit), one fewer before a worker.
        waiting: int | None = None
        looked_up = bool(raw.request_id) and (raw.resume_after_tokens > 0 or access.record is not None)
        if looked_up:
            # The queue's depth is read beside the id's lookup: one Redis round trip before queueing, not two.
            known, waiting = await asyncio.gather(
                self._dispatcher.attach(request.request_id, request.fingerprint, raw.resume_after_tokens),
                self._store.depth(),
            )
            if known is not None:
                async for event in known:
                    yield event
                return
            if raw.resume_after_tokens > 0:  # starting it again would repeat what the client has
                raise SwarmError(
                    ErrorCode.NOT_FOUND,
                    f"request_id: no request {raw.request_id!r} is kept here to resume (it was delivered, failed "
                    "for good or expired); send it again from the start, with resume_after_tokens 0",
                )
        try:
            request = await self._placed(request, access)
        except SwarmError:
            # A request already running is followed whatever the fleet looks like now (its worker may be gone).
            known = None
            if raw.request_id and not looked_up:
                known = await self._dispatcher.attach(request.request_id, request.fingerprint, 0)
            if known is None:
                raise
            async for event in known:
                yield event
            return
        if waiting is None and access.record is not None:
            waiting = await self._store.depth()  # before the key's admission counts the request
        if waiting is not None and waiting >= self._config.max_queue:
            raise queue_full(waiting)
        ticket = await self._admission.admit(access, request) if self._admission is not None else None
        events = self._dispatcher.submit(
            request, max_queue=self._config.max_queue, attach_known=bool(raw.request_id) and not looked_up
        )
        if ticket is None:
            async for event in await events:
                yield event
            return
        try:
            async for event in await events:
                ticket.observe(event)
                yield event
        finally:
            await ticket.close()

    async def _placed(self, request: GenerationRequest, access: Access) -> GenerationRequest:
        """The request with its model resolved; refused if the caller may not use it or it overflows the context."""
        model = await self._resolve_model(request.model)
        check_model(access, model)
        request = replace(request, model=model)
        context = await self._context_length(model)
        if context:
            try:
                check_fits_context(request, context)
            except InvalidRequest as exc:
                raise SwarmError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        return request

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """The inputs' embeddings from a worker of the model (Embeddings routes them)."""
        try:
            check_inputs(request.inputs)
        except InvalidRequest as exc:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        if self._embeddings is None:
            raise SwarmError(ErrorCode.FAILED_PRECONDITION, "this coordinator serves no embeddings")
        model = await self._resolve_model(request.model, loaded=True)  # embeddings skip the queue
        request_id = request.request_id or new_request_id()
        return await self._embeddings.embed(replace(request, model=model, request_id=request_id))

    async def resolve_model(self, requested: str) -> str:
        """The model a request naming `requested` runs on ("": the default); NOT_FOUND, FAILED_PRECONDITION or
        UNAVAILABLE as generate. A planned model may still be loading: its request waits in the queue."""
        return await self._resolve_model(requested)

    async def chat_template(self, model: str) -> str:
        """The chat template the model's workers report, else a planned model's file's (none may serve it yet);
        "" when none has one."""
        views = [v for v in self._dispatcher.views() if v.info.model == model]
        if not views:  # a worker may have joined since the last registry poll
            views = [v for v in await self._dispatcher.fresh_views() if v.info.model == model]
        template = next((v.info.chat_template for v in views if v.info.chat_template), "")
        assigner = self._fleet.assigner(model) if self._fleet is not None else None
        if template or assigner is None:
            return template
        if model not in self._planned_templates:  # read once: a header read, 0.05 s for Gemma 3 270M
            self._planned_templates[model] = await asyncio.to_thread(file_chat_template, assigner.model_path)
        return self._planned_templates[model]

    async def _resolve_model(self, requested: str, loaded: bool = False) -> str:
        if self._demand is not None and requested in self._demand.fleet.models:
            await self._demand.used(requested)
            self._check_loadable(requested)
            if loaded:
                await self._wait_for_load(requested)
            return requested
        if requested:
            known = {v.info.model for v in self._dispatcher.views()} | {self._config.default_model}
            if requested not in known:  # a worker may have joined since the last registry poll
                known |= {v.info.model for v in await self._dispatcher.fresh_views()}
            if requested not in known:
                served = ", ".join(sorted(m for m in known if m)) or "none yet"
                raise SwarmError(ErrorCode.NOT_FOUND, f"model {requested!r} is not served here (served: {served})")
            return requested
        deadline = time.monotonic() + self._config.no_worker_wait_s
        while True:
            model = default_model(self._dispatcher.views(), self._config.default_model)
            if model:
                return model
            if time.monotonic() >= deadline:
                raise SwarmError(
                    ErrorCode.UNAVAILABLE,
                    f"no worker has joined the swarm (waited {self._config.no_worker_wait_s:.0f} s)",
                )
            await asyncio.sleep(self._config.poll_interval_s)

    def _check_loadable(self, model: str) -> None:
        """Refuses a planned model no worker serves and no PC that offered can hold whole: it can never load.

        One that can waits in the queue like any request while the fleet loads it (the dispatcher's
        QueuedDemand wants it for as long as a request it owns waits for it).
        """
        if self._demand is not None and not self._serves(model) and self._demand.fleet.too_large(model):
            raise SwarmError(
                ErrorCode.FAILED_PRECONDITION,
                f"model {model!r} fits no PC of this swarm whole (with its KV cache): join a PC with more "
                "memory, or serve it as pipeline stages (swarm split)",
            )

    async def _wait_for_load(self, model: str) -> None:
        """Returns once a worker serves the planned model, asking the fleet to load it meanwhile: for embeddings,
        which skip the queue."""
        demand = self._demand
        if demand is None or self._serves(model):
            return
        deadline = time.monotonic() + self._config.model_load_wait_s
        log.info("model %s is asked for and no worker serves it: loading it", model)
        while not self._serves(model):
            self._check_loadable(model)
            if time.monotonic() >= deadline:
                raise SwarmError(
                    ErrorCode.UNAVAILABLE,
                    f"model {model!r} is still loading (waited {self._config.model_load_wait_s:.0f} s); retry shortly",
                )
            await demand.want(model)
            await asyncio.sleep(self._config.poll_interval_s)

    def _serves(self, model: str) -> bool:
        return any(v.up and v.info.takes_requests and v.info.model == model for v in self._dispatcher.views())

    async def _context_length(self, model: str) -> int:
        """The smallest per-sequence context among the model's workers; 0 when none has joined."""
        lengths = [v.info.context_length for v in self._dispatcher.views() if _serving(v, model)]
        if not lengths:  # a worker may have joined since the last registry poll
            lengths = [v.info.context_length for v in await self._dispatcher.fresh_views() if _serving(v, model)]
        return min(lengths, default=0)

    async def list_models(self, access: Access = OPEN_ACCESS) -> list[ModelSummary]:
        """The models served and planned; a key held to some models sees only those."""
        views = [v for v in await self._dispatcher.fresh_views() if not v.info.draft_for]  # a draft serves no model
        default = default_model(views, self._config.default_model) or ""
        names = {v.info.model for v in views} | ({default} if default else set())
        planned = {}
        if self._demand is not None:
            await self._demand.sync()  # "loading" for a model wanted on any coordinator
            planned = {m.name: m for m in self._demand.fleet.describe(views)}
        return [
            ModelSummary(
                name=name,
                context_length=min((v.info.context_length for v in views if v.info.model == name), default=0),
                workers_up=sum(1 for v in views if v.up and v.info.model == name and v.info.takes_requests),
                is_default=name == default,
                state=planned[name].state if name in planned else "",
                pinned=name in planned and planned[name].pinned,
                workers=tuple(sorted(v.info.worker_id for v in views if v.up and v.info.model == name)),
            )
            for name in sorted(names | set(planned))
            if access.record is None or access.record.allows_model(name)
        ]

    async def usage(self, since_hour: int = 0) -> UsageReport:
        """Tokens per tenant, model and worker, and workers' busy time, from since_hour on (0: all time)."""
        return await self._store.usage.report(since_hour)

    async def status(self) -> SwarmStatus:
        views = await self._dispatcher.fresh_views()
        return SwarmStatus(
            workers=views,
            queue_depth=await self._store.depth(),
            default_model=default_model(views, self._config.default_model) or "",
        )

    # ------------------------------------------------------------ workers

    async def join(self, info: WorkerInfo) -> tuple[WorkerId, str]:
        """The worker's id and the secret its heartbeats and leave must carry."""
        if not info.address or not info.model or info.slots < 1:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, "join needs an address, a model and at least one slot")
        if info.draft_for and (refused := draft_refusal(await self._dispatcher.fresh_views(), info)):
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"--draft-for {info.draft_for}: {refused}")
        worker_id = info.worker_id or WorkerId("worker-" + secrets.token_hex(4))
        secret = await self._registry.join(replace(info, worker_id=worker_id))
        log.info("worker %s joined from %s serving %s (%d slots)", worker_id, info.address, info.model, info.slots)
        await self._dispatcher.workers_changed()
        return worker_id, secret

    async def heartbeat(
        self, worker_id: WorkerId, secret: str, load: WorkerLoad, measured: StageMeasurement | None = None
    ) -> tuple[Standing, bool]:
        """The worker's standing, and whether the plan moved it (it must leave and ask Assign again). A stage's
        measurements go to the planner."""
        standing = await self._registry.heartbeat(worker_id, secret, load)
        await self._store.usage.busy(worker_id, load.busy_seconds, load.watts, load.cost_per_hour)
        await self._prune_assigner()
        if self._demand is None:
            return standing, False
        fleet = self._demand.fleet
        if standing is Standing.MEMBER and measured is not None and fleet.observe(worker_id, measured):
            await self._save_plan()
        await self._demand.rebalance(self._dispatcher.views())
        return standing, fleet.must_reassign(worker_id)

    def paired_draft(self, worker_id: WorkerId) -> str:
        """The draft PC a worker should take proposals from ("" for none), as of the last registry poll."""
        views = self._dispatcher.views()
        target = next((v.info for v in views if v.info.worker_id == worker_id), None)
        return paired_draft(views, target) if target is not None else ""

    async def assign(self, offer: NodeOffer) -> AssignmentReply:
        """What a worker that joined without a model should serve, from the plan of every offer so far."""
        if self._fleet is None:
            raise SwarmError(
                ErrorCode.FAILED_PRECONDITION,
                "this coordinator plans no model: start it with --plan-model MODEL.gguf, or join with --model",
            )
        if problem := offer_problem(offer):
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, problem)
        await self._prune_assigner()
        reply = await self._fleet.assign(offer)
        await self._save_plan()
        return reply

    async def _prune_assigner(self) -> None:
        if self._fleet is not None:
            views = self._dispatcher.views()
            # Silent for a while, not just marked down after one failed call (its next heartbeat may revive it),
            # and counted from this coordinator's start: no heartbeat can land while no coordinator runs.
            up_for = time.monotonic() - self._started
            ttl = self._config.heartbeat_ttl_s
            dead = (v.info.worker_id for v in views if not v.up and min(v.heartbeat_age_s, up_for) > ttl)
            if self._fleet.prune(dead, (v.info.worker_id for v in views)):
                await self._save_plan()

    async def _save_plan(self) -> None:
        if self._fleet is not None:
            for model, state in self._fleet.snapshot().items():
                if model in self._plans:
                    await self._plans[model].save(state)

    async def drain(self, worker_id: WorkerId) -> None:
        """Routes nothing new to the worker; its next heartbeat tells it to finish its work and leave."""
        if not await self._registry.drain(worker_id):
            raise SwarmError(ErrorCode.NOT_FOUND, f"worker_id: no worker {worker_id!r} is registered")
        log.info("worker %s is draining", worker_id)
        await self._dispatcher.workers_changed()

    async def leave(self, worker_id: WorkerId, secret: str) -> None:
        await self._registry.leave(worker_id, secret)
        log.info("worker %s left", worker_id)
        await self._dispatcher.workers_changed()


def _serving(view: WorkerView, model: str) -> bool:
    """A worker of the model that serves it (whole or a stage), not a draft PC named after it."""
    return view.info.model == model and not view.info.draft_for
