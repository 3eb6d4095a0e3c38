from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]

class WorkerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATE_UNSPECIFIED: _ClassVar[WorkerState]
    WORKER_STATE_UP: _ClassVar[WorkerState]
    WORKER_STATE_DRAINING: _ClassVar[WorkerState]
    WORKER_STATE_DOWN: _ClassVar[WorkerState]

class BatchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_STATE_UNSPECIFIED: _ClassVar[BatchState]
    BATCH_STATE_RUNNING: _ClassVar[BatchState]
    BATCH_STATE_DONE: _ClassVar[BatchState]
    BATCH_STATE_CANCELLED: _ClassVar[BatchState]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_CANCELLED: FinishReason
WORKER_STATE_UNSPECIFIED: WorkerState
WORKER_STATE_UP: WorkerState
WORKER_STATE_DRAINING: WorkerState
WORKER_STATE_DOWN: WorkerState
BATCH_STATE_UNSPECIFIED: BatchState
BATCH_STATE_RUNNING: BatchState
BATCH_STATE_DONE: BatchState
BATCH_STATE_CANCELLED: BatchState

class GenerateRequest(_message.Message):
    __slots__ = ("model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "request_id", "min_p", "repeat_penalty", "resume_after_tokens", "grammar", "grammar_trigger", "logprobs", "top_logprobs", "speculate")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_P_FIELD_NUMBER: _ClassVar[int]
    REPEAT_PENALTY_FIELD_NUMBER: _ClassVar[int]
    RESUME_AFTER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GRAMMAR_FIELD_NUMBER: _ClassVar[int]
    GRAMMAR_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    TOP_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    SPECULATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    min_p: float
    repeat_penalty: float
    resume_after_tokens: int
    grammar: str
    grammar_trigger: str
    logprobs: bool
    top_logprobs: int
    speculate: bool
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., min_p: _Optional[float] = ..., repeat_penalty: _Optional[float] = ..., resume_after_tokens: _Optional[int] = ..., grammar: _Optional[str] = ..., grammar_trigger: _Optional[str] = ..., logprobs: _Optional[bool] = ..., top_logprobs: _Optional[int] = ..., speculate: _Optional[bool] = ...) -> None: ...

class TextPiece(_message.Message):
    __slots__ = ("text", "token_ids", "logprobs")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    logprobs: _containers.RepeatedCompositeFieldContainer[TokenLogprob]
    def __init__(self, text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., logprobs: _Optional[_Iterable[_Union[TokenLogprob, _Mapping]]] = ...) -> None: ...

class TokenLogprob(_message.Message):
    __slots__ = ("token", "text", "logprob", "top")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LOGPROB_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    token: int
    text: bytes
    logprob: float
    top: _containers.RepeatedCompositeFieldContainer[TokenLogprob]
    def __init__(self, token: _Optional[int] = ..., text: _Optional[bytes] = ..., logprob: _Optional[float] = ..., top: _Optional[_Iterable[_Union[TokenLogprob, _Mapping]]] = ...) -> None: ...

class EmbedInput(_message.Message):
    __slots__ = ("text", "tokens")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    text: str
    tokens: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, text: _Optional[str] = ..., tokens: _Optional[_Iterable[int]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("model", "inputs", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _containers.RepeatedCompositeFieldContainer[EmbedInput]
    request_id: str
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[EmbedInput, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("model", "embeddings", "prompt_tokens", "worker_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    prompt_tokens: int
    worker_id: str
    def __init__(self, model: _Optional[str] = ..., embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., prompt_tokens: _Optional[int] = ..., worker_id: _Optional[str] = ...) -> None: ...

class Finished(_message.Message):
    __slots__ = ("reason", "prompt_tokens", "completion_tokens", "worker_id", "cached_prompt_tokens", "proposed_tokens", "accepted_tokens")
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    worker_id: str
    cached_prompt_tokens: int
    proposed_tokens: int
    accepted_tokens: int
    def __init__(self, reason: _Optional[_Union[FinishReason, str]] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., worker_id: _Optional[str] = ..., cached_prompt_tokens: _Optional[int] = ..., proposed_tokens: _Optional[int] = ..., accepted_tokens: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("request_id", "piece", "finished")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PIECE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    piece: TextPiece
    finished: Finished
    def __init__(self, request_id: _Optional[str] = ..., piece: _Optional[_Union[TextPiece, _Mapping]] = ..., finished: _Optional[_Union[Finished, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "context_length", "workers_up", "is_default", "state", "pinned", "workers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    WORKERS_UP_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    context_length: int
    workers_up: int
    is_default: bool
    state: str
    pinned: bool
    workers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., context_length: _Optional[int] = ..., workers_up: _Optional[int] = ..., is_default: _Optional[bool] = ..., state: _Optional[str] = ..., pinned: _Optional[bool] = ..., workers: _Optional[_Iterable[str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("info", "state", "load", "last_heartbeat_age_s", "worker_state")
    INFO_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AGE_S_FIELD_NUMBER: _ClassVar[int]
    WORKER_STATE_FIELD_NUMBER: _ClassVar[int]
    info: WorkerInfo
    state: str
    load: WorkerLoad
    last_heartbeat_age_s: float
    worker_state: WorkerState
    def __init__(self, info: _Optional[_Union[WorkerInfo, _Mapping]] = ..., state: _Optional[str] = ..., load: _Optional[_Union[WorkerLoad, _Mapping]] = ..., last_heartbeat_age_s: _Optional[float] = ..., worker_state: _Optional[_Union[WorkerState, str]] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("workers", "queue_depth", "default_model")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    queue_depth: int
    default_model: str
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., queue_depth: _Optional[int] = ..., default_model: _Optional[str] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "address", "model", "context_length", "slots", "threads", "hostname", "model_bytes", "stage_index", "stage_count", "layer_start", "layer_end", "chat_template", "draft_for", "vocab_fingerprint")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    STAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    STAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAYER_START_FIELD_NUMBER: _ClassVar[int]
    LAYER_END_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FOR_FIELD_NUMBER: _ClassVar[int]
    VOCAB_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    address: str
    model: str
    context_length: int
    slots: int
    threads: int
    hostname: str
    model_bytes: int
    stage_index: int
    stage_count: int
    layer_start: int
    layer_end: int
    chat_template: str
    draft_for: str
    vocab_fingerprint: str
    def __init__(self, worker_id: _Optional[str] = ..., address: _Optional[str] = ..., model: _Optional[str] = ..., context_length: _Optional[int] = ..., slots: _Optional[int] = ..., threads: _Optional[int] = ..., hostname: _Optional[str] = ..., model_bytes: _Optional[int] = ..., stage_index: _Optional[int] = ..., stage_count: _Optional[int] = ..., layer_start: _Optional[int] = ..., layer_end: _Optional[int] = ..., chat_template: _Optional[str] = ..., draft_for: _Optional[str] = ..., vocab_fingerprint: _Optional[str] = ...) -> None: ...

class WorkerLoad(_message.Message):
    __slots__ = ("slots_busy", "tokens_per_second", "rss_bytes", "ram_available_bytes", "tokens_generated", "prompt_tokens", "cached_prompt_tokens", "away", "busy_seconds", "watts", "cost_per_hour")
    SLOTS_BUSY_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    RAM_AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    AWAY_FIELD_NUMBER: _ClassVar[int]
    BUSY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WATTS_FIELD_NUMBER: _ClassVar[int]
    COST_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    slots_busy: int
    tokens_per_second: float
    rss_bytes: int
    ram_available_bytes: int
    tokens_generated: int
    prompt_tokens: int
    cached_prompt_tokens: int
    away: str
    busy_seconds: float
    watts: float
    cost_per_hour: float
    def __init__(self, slots_busy: _Optional[int] = ..., tokens_per_second: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., ram_available_bytes: _Optional[int] = ..., tokens_generated: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., away: _Optional[str] = ..., busy_seconds: _Optional[float] = ..., watts: _Optional[float] = ..., cost_per_hour: _Optional[float] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: WorkerInfo
    def __init__(self, info: _Optional[_Union[WorkerInfo, _Mapping]] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("worker_id", "heartbeat_interval_s", "worker_secret")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    WORKER_SECRET_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    heartbeat_interval_s: float
    worker_secret: str
    def __init__(self, worker_id: _Optional[str] = ..., heartbeat_interval_s: _Optional[float] = ..., worker_secret: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "load", "worker_secret", "measured")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    WORKER_SECRET_FIELD_NUMBER: _ClassVar[int]
    MEASURED_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    load: WorkerLoad
    worker_secret: str
    measured: StageMeasurement
    def __init__(self, worker_id: _Optional[str] = ..., load: _Optional[_Union[WorkerLoad, _Mapping]] = ..., worker_secret: _Optional[str] = ..., measured: _Optional[_Union[StageMeasurement, _Mapping]] = ...) -> None: ...

class StageMeasurement(_message.Message):
    __slots__ = ("decode_seconds_per_token", "decode_tokens", "links")
    DECODE_SECONDS_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DECODE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    decode_seconds_per_token: float
    decode_tokens: int
    links: _containers.RepeatedCompositeFieldContainer[LinkMeasurement]
    def __init__(self, decode_seconds_per_token: _Optional[float] = ..., decode_tokens: _Optional[int] = ..., links: _Optional[_Iterable[_Union[LinkMeasurement, _Mapping]]] = ...) -> None: ...

class LinkMeasurement(_message.Message):
    __slots__ = ("peer", "rtt_s", "bytes_per_s")
    PEER_FIELD_NUMBER: _ClassVar[int]
    RTT_S_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    peer: str
    rtt_s: float
    bytes_per_s: float
    def __init__(self, peer: _Optional[str] = ..., rtt_s: _Optional[float] = ..., bytes_per_s: _Optional[float] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("rejoin", "drain", "reassign", "draft")
    REJOIN_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    REASSIGN_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    rejoin: bool
    drain: bool
    reassign: bool
    draft: str
    def __init__(self, rejoin: _Optional[bool] = ..., drain: _Optional[bool] = ..., reassign: _Optional[bool] = ..., draft: _Optional[str] = ...) -> None: ...

class AssignRequest(_message.Message):
    __slots__ = ("node_id", "address", "free_bytes", "speed", "context_length", "slots")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    free_bytes: int
    speed: float
    context_length: int
    slots: int
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ..., free_bytes: _Optional[int] = ..., speed: _Optional[float] = ..., context_length: _Optional[int] = ..., slots: _Optional[int] = ...) -> None: ...

class AssignResponse(_message.Message):
    __slots__ = ("model", "split", "stage_index", "stage_count", "layer_start", "layer_end", "next_stage", "retry_after_s", "message")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    STAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAYER_START_FIELD_NUMBER: _ClassVar[int]
    LAYER_END_FIELD_NUMBER: _ClassVar[int]
    NEXT_STAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    model: str
    split: str
    stage_index: int
    stage_count: int
    layer_start: int
    layer_end: int
    next_stage: str
    retry_after_s: float
    message: str
    def __init__(self, model: _Optional[str] = ..., split: _Optional[str] = ..., stage_index: _Optional[int] = ..., stage_count: _Optional[int] = ..., layer_start: _Optional[int] = ..., layer_end: _Optional[int] = ..., next_stage: _Optional[str] = ..., retry_after_s: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("worker_id", "worker_secret")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_SECRET_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    worker_secret: str
    def __init__(self, worker_id: _Optional[str] = ..., worker_secret: _Optional[str] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RelayCommand(_message.Message):
    __slots__ = ("run", "cancel_request_id")
    RUN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run: RunRequest
    cancel_request_id: str
    def __init__(self, run: _Optional[_Union[RunRequest, _Mapping]] = ..., cancel_request_id: _Optional[str] = ...) -> None: ...

class RunEnded(_message.Message):
    __slots__ = ("request_id", "code", "message")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    code: str
    message: str
    def __init__(self, request_id: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RelayBatch(_message.Message):
    __slots__ = ("events", "ended")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[GenerateResponse]
    ended: _containers.RepeatedCompositeFieldContainer[RunEnded]
    def __init__(self, events: _Optional[_Iterable[_Union[GenerateResponse, _Mapping]]] = ..., ended: _Optional[_Iterable[_Union[RunEnded, _Mapping]]] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_p", "top_k", "seed", "min_p", "repeat_penalty", "grammar", "grammar_trigger", "logprobs", "top_logprobs")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MIN_P_FIELD_NUMBER: _ClassVar[int]
    REPEAT_PENALTY_FIELD_NUMBER: _ClassVar[int]
    GRAMMAR_FIELD_NUMBER: _ClassVar[int]
    GRAMMAR_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    TOP_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    top_k: int
    seed: int
    min_p: float
    repeat_penalty: float
    grammar: str
    grammar_trigger: str
    logprobs: bool
    top_logprobs: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ..., min_p: _Optional[float] = ..., repeat_penalty: _Optional[float] = ..., grammar: _Optional[str] = ..., grammar_trigger: _Optional[str] = ..., logprobs: _Optional[bool] = ..., top_logprobs: _Optional[int] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("request_id", "prompt", "max_tokens", "sampling", "stop", "resume_tokens", "traceparent", "piece_interval_ms", "speculation_off", "tenant")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    PIECE_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SPECULATION_OFF_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: str
    max_tokens: int
    sampling: SamplingParams
    stop: _containers.RepeatedScalarFieldContainer[str]
    resume_tokens: _containers.RepeatedScalarFieldContainer[int]
    traceparent: str
    piece_interval_ms: int
    speculation_off: bool
    tenant: str
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[str] = ..., max_tokens: _Optional[int] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ..., stop: _Optional[_Iterable[str]] = ..., resume_tokens: _Optional[_Iterable[int]] = ..., traceparent: _Optional[str] = ..., piece_interval_ms: _Optional[int] = ..., speculation_off: _Optional[bool] = ..., tenant: _Optional[str] = ...) -> None: ...

class GetManifestRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class GetManifestResponse(_message.Message):
    __slots__ = ("manifest_json",)
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    manifest_json: str
    def __init__(self, manifest_json: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("model", "file", "offset")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    model: str
    file: str
    offset: int
    def __init__(self, model: _Optional[str] = ..., file: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("data", "offset", "total_bytes", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_bytes: int
    sha256: str
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class StagePing(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class StagePong(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionOpen(_message.Message):
    __slots__ = ("session", "sampling", "prompt", "keep", "traceparent", "generated")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    session: int
    sampling: SamplingParams
    prompt: _containers.RepeatedScalarFieldContainer[int]
    keep: int
    traceparent: str
    generated: int
    def __init__(self, session: _Optional[int] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ..., prompt: _Optional[_Iterable[int]] = ..., keep: _Optional[int] = ..., traceparent: _Optional[str] = ..., generated: _Optional[int] = ...) -> None: ...

class SessionRows(_message.Message):
    __slots__ = ("session", "position", "rows", "hidden", "sample", "proposal", "trim")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    TRIM_FIELD_NUMBER: _ClassVar[int]
    session: int
    position: int
    rows: int
    hidden: bytes
    sample: bool
    proposal: _containers.RepeatedScalarFieldContainer[int]
    trim: bool
    def __init__(self, session: _Optional[int] = ..., position: _Optional[int] = ..., rows: _Optional[int] = ..., hidden: _Optional[bytes] = ..., sample: _Optional[bool] = ..., proposal: _Optional[_Iterable[int]] = ..., trim: _Optional[bool] = ...) -> None: ...

class StageStep(_message.Message):
    __slots__ = ("opens", "releases", "sessions", "bfloat16")
    OPENS_FIELD_NUMBER: _ClassVar[int]
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    BFLOAT16_FIELD_NUMBER: _ClassVar[int]
    opens: _containers.RepeatedCompositeFieldContainer[SessionOpen]
    releases: _containers.RepeatedScalarFieldContainer[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionRows]
    bfloat16: bool
    def __init__(self, opens: _Optional[_Iterable[_Union[SessionOpen, _Mapping]]] = ..., releases: _Optional[_Iterable[int]] = ..., sessions: _Optional[_Iterable[_Union[SessionRows, _Mapping]]] = ..., bfloat16: _Optional[bool] = ...) -> None: ...

class SessionToken(_message.Message):
    __slots__ = ("session", "token", "logprob")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    LOGPROB_FIELD_NUMBER: _ClassVar[int]
    session: int
    token: int
    logprob: TokenLogprob
    def __init__(self, session: _Optional[int] = ..., token: _Optional[int] = ..., logprob: _Optional[_Union[TokenLogprob, _Mapping]] = ...) -> None: ...

class StageStepResult(_message.Message):
    __slots__ = ("tokens", "stages_seconds", "slowest_stage_seconds")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    STAGES_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SLOWEST_STAGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[SessionToken]
    stages_seconds: float
    slowest_stage_seconds: float
    def __init__(self, tokens: _Optional[_Iterable[_Union[SessionToken, _Mapping]]] = ..., stages_seconds: _Optional[float] = ..., slowest_stage_seconds: _Optional[float] = ...) -> None: ...

class DraftContext(_message.Message):
    __slots__ = ("sequence", "start", "tokens", "end", "vocab_fingerprint")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    VOCAB_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    sequence: str
    start: int
    tokens: _containers.RepeatedScalarFieldContainer[int]
    end: bool
    vocab_fingerprint: str
    def __init__(self, sequence: _Optional[str] = ..., start: _Optional[int] = ..., tokens: _Optional[_Iterable[int]] = ..., end: _Optional[bool] = ..., vocab_fingerprint: _Optional[str] = ...) -> None: ...

class DraftProposal(_message.Message):
    __slots__ = ("sequence", "start", "tokens")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    sequence: str
    start: int
    tokens: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sequence: _Optional[str] = ..., start: _Optional[int] = ..., tokens: _Optional[_Iterable[int]] = ...) -> None: ...

class BatchSubmitChunk(_message.Message):
    __slots__ = ("model", "lines")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    model: str
    lines: _containers.RepeatedCompositeFieldContainer[GenerateRequest]
    def __init__(self, model: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[GenerateRequest, _Mapping]]] = ...) -> None: ...

class BatchJob(_message.Message):
    __slots__ = ("job_id", "state", "total", "done", "failed", "created_ms", "finished_ms", "model")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: BatchState
    total: int
    done: int
    failed: int
    created_ms: int
    finished_ms: int
    model: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[BatchState, str]] = ..., total: _Optional[int] = ..., done: _Optional[int] = ..., failed: _Optional[int] = ..., created_ms: _Optional[int] = ..., finished_ms: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class BatchGetRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class BatchListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BatchListResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[BatchJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[BatchJob, _Mapping]]] = ...) -> None: ...

class BatchCancelRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class BatchResultsRequest(_message.Message):
    __slots__ = ("job_id", "partial")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    partial: bool
    def __init__(self, job_id: _Optional[str] = ..., partial: _Optional[bool] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("line", "custom_id", "text", "finish_reason", "prompt_tokens", "completion_tokens", "error")
    LINE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    line: int
    custom_id: str
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    error: str
    def __init__(self, line: _Optional[int] = ..., custom_id: _Optional[str] = ..., text: _Optional[str] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class CreateKeyRequest(_message.Message):
    __slots__ = ("name", "models", "expires", "tokens_per_minute", "requests_per_minute", "max_streams", "priority", "admin", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    models: _containers.RepeatedScalarFieldContainer[str]
    expires: str
    tokens_per_minute: int
    requests_per_minute: int
    max_streams: int
    priority: str
    admin: bool
    weight: float
    def __init__(self, name: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., expires: _Optional[str] = ..., tokens_per_minute: _Optional[int] = ..., requests_per_minute: _Optional[int] = ..., max_streams: _Optional[int] = ..., priority: _Optional[str] = ..., admin: _Optional[bool] = ..., weight: _Optional[float] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("name", "models", "expires_ms", "tokens_per_minute", "requests_per_minute", "max_streams", "priority", "admin", "revoked", "created_ms", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    models: _containers.RepeatedScalarFieldContainer[str]
    expires_ms: int
    tokens_per_minute: int
    requests_per_minute: int
    max_streams: int
    priority: int
    admin: bool
    revoked: bool
    created_ms: int
    weight: float
    def __init__(self, name: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., expires_ms: _Optional[int] = ..., tokens_per_minute: _Optional[int] = ..., requests_per_minute: _Optional[int] = ..., max_streams: _Optional[int] = ..., priority: _Optional[int] = ..., admin: _Optional[bool] = ..., revoked: _Optional[bool] = ..., created_ms: _Optional[int] = ..., weight: _Optional[float] = ...) -> None: ...

class CreateKeyResponse(_message.Message):
    __slots__ = ("key", "secret")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    key: ApiKey
    secret: str
    def __init__(self, key: _Optional[_Union[ApiKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UsageRequest(_message.Message):
    __slots__ = ("since_hour", "tenant")
    SINCE_HOUR_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    since_hour: int
    tenant: str
    def __init__(self, since_hour: _Optional[int] = ..., tenant: _Optional[str] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("tenant", "model", "worker", "prompt_tokens", "cached_prompt_tokens", "completion_tokens", "requests")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    model: str
    worker: str
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    requests: int
    def __init__(self, tenant: _Optional[str] = ..., model: _Optional[str] = ..., worker: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., requests: _Optional[int] = ...) -> None: ...

class UsageWorker(_message.Message):
    __slots__ = ("worker", "busy_seconds", "watts", "cost_per_hour")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    BUSY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WATTS_FIELD_NUMBER: _ClassVar[int]
    COST_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    worker: str
    busy_seconds: float
    watts: float
    cost_per_hour: float
    def __init__(self, worker: _Optional[str] = ..., busy_seconds: _Optional[float] = ..., watts: _Optional[float] = ..., cost_per_hour: _Optional[float] = ...) -> None: ...

class UsageReport(_message.Message):
    __slots__ = ("since_hour", "rows", "workers", "seconds")
    SINCE_HOUR_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    since_hour: int
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    workers: _containers.RepeatedCompositeFieldContainer[UsageWorker]
    seconds: float
    def __init__(self, since_hour: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ..., workers: _Optional[_Iterable[_Union[UsageWorker, _Mapping]]] = ..., seconds: _Optional[float] = ...) -> None: ...
