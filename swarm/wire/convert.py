"""Converts between protobuf messages and the in-process dataclasses of swarm.shared.types."""

from __future__ import annotations

from swarm.shared.types import (
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    ModelSummary,
    RawRequest,
    SamplingParams,
    SwarmStatus,
    TextPiece,
    TokenLogprob,
    WorkerId,
    WorkerInfo,
    WorkerLoad,
    WorkerState,
    WorkerView,
)
from swarm.wire import swarm_pb2 as pb

REASON_TO_WIRE = {
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.CANCELLED: pb.FINISH_REASON_CANCELLED,
}
REASON_FROM_WIRE = {v: k for k, v in REASON_TO_WIRE.items()}


def raw_request_from_wire(msg: pb.GenerateRequest) -> RawRequest:
    return RawRequest(
        model=msg.model,
        prompt=msg.prompt,
        max_tokens=msg.max_tokens,
        temperature=msg.temperature if msg.HasField("temperature") else None,
        top_p=msg.top_p if msg.HasField("top_p") else None,
        top_k=msg.top_k,
        seed=msg.seed if msg.HasField("seed") else None,
        stop=tuple(msg.stop),
        request_id=msg.request_id,
        min_p=msg.min_p if msg.HasField("min_p") else None,
        repeat_penalty=msg.repeat_penalty if msg.HasField("repeat_penalty") else None,
        resume_after_tokens=msg.resume_after_tokens,
        grammar=msg.grammar,
        grammar_trigger=msg.grammar_trigger,
        logprobs=msg.logprobs,
        top_logprobs=msg.top_logprobs,
        speculate=msg.speculate if msg.HasField("speculate") else None,
    )


def logprob_to_wire(logprob: TokenLogprob) -> pb.TokenLogprob:
    return pb.TokenLogprob(
        token=logprob.token,
        text=logprob.text,
        logprob=logprob.logprob,
        top=[logprob_to_wire(t) for t in logprob.top],
    )


def logprob_from_wire(msg: pb.TokenLogprob) -> TokenLogprob:
    return TokenLogprob(msg.token, msg.logprob, msg.text, tuple(logprob_from_wire(t) for t in msg.top))


def event_to_wire(request_id: str, event: GenerationEvent) -> pb.GenerateResponse:
    if isinstance(event, TextPiece):
        piece = pb.TextPiece(
            text=event.text, token_ids=event.token_ids, logprobs=[logprob_to_wire(p) for p in event.logprobs]
        )
        return pb.GenerateResponse(request_id=request_id, piece=piece)
    finished = pb.Finished(
        reason=REASON_TO_WIRE[event.reason],
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        worker_id=event.worker_id,
        cached_prompt_tokens=event.cached_prompt_tokens,
        proposed_tokens=event.proposed_tokens,
        accepted_tokens=event.accepted_tokens,
    )
    return pb.GenerateResponse(request_id=request_id, finished=finished)


def event_from_wire(msg: pb.GenerateResponse) -> GenerationEvent:
    if msg.HasField("piece"):
        return TextPiece(
            text=msg.piece.text,
            token_ids=tuple(msg.piece.token_ids),
            logprobs=tuple(logprob_from_wire(p) for p in msg.piece.logprobs),
        )
    if not msg.HasField("finished"):
        raise ValueError("GenerateResponse carries neither a piece nor a finish")
    f = msg.finished
    return Finished(
        reason=REASON_FROM_WIRE.get(f.reason, FinishReason.STOP),
        prompt_tokens=f.prompt_tokens,
        completion_tokens=f.completion_tokens,
        worker_id=f.worker_id,
        cached_prompt_tokens=f.cached_prompt_tokens,
        proposed_tokens=f.proposed_tokens,
        accepted_tokens=f.accepted_tokens,
    )


def sampling_to_wire(s: SamplingParams) -> pb.SamplingParams:
    return pb.SamplingParams(
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        seed=s.seed,
        min_p=s.min_p,
        repeat_penalty=s.repeat_penalty,
        grammar=s.grammar,
        grammar_trigger=s.grammar_trigger,
        logprobs=s.logprobs,
        top_logprobs=s.top_logprobs,
    )


def sampling_from_wire(s: pb.SamplingParams) -> SamplingParams:
    return SamplingParams(
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        seed=s.seed,
        min_p=s.min_p,
        repeat_penalty=s.repeat_penalty or 1.0,
        grammar=s.grammar,
        grammar_trigger=s.grammar_trigger,
        logprobs=s.logprobs,
        top_logprobs=s.top_logprobs,
    )


def run_request_to_wire(request: GenerationRequest) -> pb.RunRequest:
    return pb.RunRequest(
        request_id=request.request_id,
        prompt=request.prompt,
        max_tokens=request.max_tokens,
        sampling=sampling_to_wire(request.sampling),
        stop=request.stop,
        resume_tokens=request.resume_tokens,
        piece_interval_ms=round(request.piece_interval_s * 1000),
        speculation_off=not request.speculate,
        tenant=request.tenant,
    )


def run_request_from_wire(msg: pb.RunRequest, model: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=msg.request_id,
        model=model,
        prompt=msg.prompt,
        max_tokens=msg.max_tokens,
        sampling=sampling_from_wire(msg.sampling),
        stop=tuple(msg.stop),
        resume_tokens=tuple(msg.resume_tokens),
        piece_interval_s=msg.piece_interval_ms / 1000,
        speculate=not msg.speculation_off,
        tenant=msg.tenant,
    )


def worker_info_to_wire(info: WorkerInfo) -> pb.WorkerInfo:
    return pb.WorkerInfo(
        worker_id=info.worker_id,
        address=info.address,
        model=info.model,
        context_length=info.context_length,
        slots=info.slots,
        threads=info.threads,
        hostname=info.hostname,
        model_bytes=info.model_bytes,
        stage_index=info.stage_index,
        stage_count=info.stage_count,
        layer_start=info.layer_start,
        layer_end=info.layer_end,
        chat_template=info.chat_template,
        draft_for=info.draft_for,
        vocab_fingerprint=info.vocab_fingerprint,
    )


def worker_info_from_wire(msg: pb.WorkerInfo) -> WorkerInfo:
    return WorkerInfo(
        worker_id=WorkerId(msg.worker_id),
        address=msg.address,
        model=msg.model,
        context_length=msg.context_length,
        slots=msg.slots,
        threads=msg.threads,
        hostname=msg.hostname,
        model_bytes=msg.model_bytes,
        stage_index=msg.stage_index,
        stage_count=msg.stage_count,
        layer_start=msg.layer_start,
        layer_end=msg.layer_end,
        chat_template=msg.chat_template,
        draft_for=msg.draft_for,
        vocab_fingerprint=msg.vocab_fingerprint,
    )


def worker_load_to_wire(load: WorkerLoad) -> pb.WorkerLoad:
    return pb.WorkerLoad(
        slots_busy=load.slots_busy,
        tokens_per_second=load.tokens_per_second,
        rss_bytes=load.rss_bytes,
        ram_available_bytes=load.ram_available_bytes,
        tokens_generated=load.tokens_generated,
        prompt_tokens=load.prompt_tokens,
        cached_prompt_tokens=load.cached_prompt_tokens,
        away=load.away,
        busy_seconds=load.busy_seconds,
        watts=load.watts,
        cost_per_hour=load.cost_per_hour,
    )


def worker_load_from_wire(msg: pb.WorkerLoad) -> WorkerLoad:
    return WorkerLoad(
        slots_busy=msg.slots_busy,
        tokens_per_second=msg.tokens_per_second,
        rss_bytes=msg.rss_bytes,
        ram_available_bytes=msg.ram_available_bytes,
        tokens_generated=msg.tokens_generated,
        prompt_tokens=msg.prompt_tokens,
        cached_prompt_tokens=msg.cached_prompt_tokens,
        away=msg.away,
        busy_seconds=msg.busy_seconds,
        watts=msg.watts,
        cost_per_hour=msg.cost_per_hour,
    )


def models_to_wire(models: list[ModelSummary]) -> pb.ListModelsResponse:
    return pb.ListModelsResponse(
        models=[
            pb.ModelInfo(
                name=m.name,
                context_length=m.context_length,
                workers_up=m.workers_up,
                is_default=m.is_default,
                state=m.state,
                pinned=m.pinned,
                workers=m.workers,
            )
            for m in models
        ]
    )


def models_from_wire(msg: pb.ListModelsResponse) -> list[ModelSummary]:
    return [
        ModelSummary(m.name, m.context_length, m.workers_up, m.is_default, m.state, m.pinned, tuple(m.workers))
        for m in msg.models
    ]


_WORKER_STATE_TO_WIRE = {
    WorkerState.UP: pb.WORKER_STATE_UP,
    WorkerState.DRAINING: pb.WORKER_STATE_DRAINING,
    WorkerState.DOWN: pb.WORKER_STATE_DOWN,
}
_WORKER_STATE_FROM_WIRE = {wire: state for state, wire in _WORKER_STATE_TO_WIRE.items()}


def worker_state_to_wire(state: WorkerState) -> pb.WorkerState:
    return _WORKER_STATE_TO_WIRE[state]


def worker_state_from_wire(msg: pb.WorkerStatus) -> WorkerState:
    """The enum; a coordinator older than it sent only the text, and any state it does not know is down."""
    if msg.worker_state in _WORKER_STATE_FROM_WIRE:
        return _WORKER_STATE_FROM_WIRE[msg.worker_state]
    try:
        return WorkerState(msg.state)
    except ValueError:
        return WorkerState.DOWN


def status_to_wire(status: SwarmStatus) -> pb.GetStatusResponse:
    workers = [
        pb.WorkerStatus(
            info=worker_info_to_wire(v.info),
            state=v.state.value,
            worker_state=worker_state_to_wire(v.state),
            load=worker_load_to_wire(v.load),
            last_heartbeat_age_s=v.heartbeat_age_s,
        )
        for v in status.workers
    ]
    return pb.GetStatusResponse(workers=workers, queue_depth=status.queue_depth, default_model=status.default_model)


def status_from_wire(msg: pb.GetStatusResponse) -> SwarmStatus:
    workers = [
        WorkerView(
            info=worker_info_from_wire(w.info),
            load=worker_load_from_wire(w.load),
            state=worker_state_from_wire(w),
            heartbeat_age_s=w.last_heartbeat_age_s,
        )
        for w in msg.workers
    ]
    return SwarmStatus(workers=workers, queue_depth=msg.queue_depth, default_model=msg.default_model)
