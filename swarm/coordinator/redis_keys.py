"""Every Redis key swarm uses, in one place, with why it exists.

Nothing the coordinator holds in memory is the only copy of anything a client or
worker was promised: a restarted coordinator rebuilds its view from these keys.
"""

from enum import StrEnum

from swarm.shared.validation import BATCH_REQUEST_ID_PREFIX

# Hash worker_id -> WorkerInfo as JSON: the registry. Outlives coordinator restarts
# so workers keep being known (and routable) while the coordinator is replaced.
WORKERS = "swarm:workers"

# Hash worker_id -> unix time of its last heartbeat, for "last heartbeat age".
LAST_SEEN = "swarm:last_seen"

# String per worker, WorkerLoad as JSON, with a TTL of a few heartbeats: its
# existence is the worker's liveness. An expired key means the worker is down.
HEARTBEAT_PREFIX = "swarm:heartbeat:"

# Hash worker_id -> sha256 hex of the secret the worker was issued when it joined: its heartbeats
# and its leave carry the secret, proving they come from that worker. Removed with the entry.
WORKER_SECRETS = "swarm:worker-secrets"

# String per worker with the heartbeat TTL, set at join and refreshed by each proven heartbeat:
# while it exists the id is refused to any other joiner. Unlike the heartbeat key, a failed call
# (mark_down) does not end it, so a worker that is briefly unreachable keeps its id.
WORKER_CLAIM_PREFIX = "swarm:worker-claim:"

# Set of worker ids draining: they finish what they run and take nothing new. In Redis so
# every coordinator routes around them and the worker learns it from any heartbeat reply.
DRAINING = "swarm:draining"

# Sorted set of request ids waiting for a worker, scored by fair queuing (fairness.queue_tags): priority
# class first, then turns across tenants. The score is fixed at enqueue and kept in the request's hash
# (`score`), so a requeued or taken-over request keeps its place, and a restart loses no waiting request.
QUEUE = "swarm:queue"

# Hash priority class -> its virtual time (the highest score dispatched in it), and hash
# "class:tenant" -> the tenant's virtual finish in that class: fair queuing's state, shared by every
# coordinator and moved only by Lua scripts (enqueue, claim), so several coordinators keep one order.
FAIR_CLASS_TIME = "swarm:fair:class-time"
FAIR_TENANT_FINISH = "swarm:fair:tenant-finish"
# Hash tenant -> when (ms) it last queued a request: the slot rule (fairness.slot_share) counts the tenants
# active lately across all coordinators. Entries older than the rule's window are deleted as it reads them.
FAIR_TENANT_SEEN = "swarm:fair:tenant-seen"

# Set of request ids handed to a worker and not yet finished. A coordinator that
# starts finds here the requests its predecessor was running and queues them again.
RUNNING = "swarm:running"

# Hash per request: its GenerationRequest as JSON, its state and, once done, its
# result. Kept DELIVERED_GRACE_S once the result was written to a client; otherwise it
# expires after RESULT_TTL_S so results nobody comes back for do not pile up. Keyed by the
# request's scoped id (coordinator.request_identity): each API key has its own ids.
REQUEST_PREFIX = "swarm:request:"
RESULT_TTL_S = 24 * 3600
# Written to a client's stream is not read by it: a client whose coordinator dies with the last
# pieces still in flight resumes from the result within this long.
DELIVERED_GRACE_S = 60
# A request that failed for want of a worker is kept, with its pieces, this long: the client's
# retry resumes it after the tokens it has instead of starting it again.
FAILED_TTL_S = 3600


class RequestState(StrEnum):
    """The `state` field of a request's hash."""

    QUEUED = "queued"  # in QUEUE, waiting for a worker
    RUNNING = "running"  # in RUNNING, handed to a worker
    DONE = "done"  # its result is kept until a client takes it or it expires
    FAILED = "failed"  # in neither set: a client's retry queues it again, or it expires


def heartbeat_key(worker_id: str) -> str:
    return HEARTBEAT_PREFIX + worker_id


def worker_claim_key(worker_id: str) -> str:
    return WORKER_CLAIM_PREFIX + worker_id


def request_key(request_id: str) -> str:
    return REQUEST_PREFIX + request_id


# Hash per running request: its pieces as clients get them, piece index -> [text, [token ids]]
# as JSON, each saved before it is sent. A restarted coordinator resumes the request after them.
REQUEST_PIECES_PREFIX = "swarm:request-pieces:"


def request_pieces_key(request_id: str) -> str:
    return REQUEST_PIECES_PREFIX + request_id


# String per queued or running request: the id of the coordinator that owns it, with a TTL of a few
# seconds that its owner renews. Only the owner dispatches and relays the request; once the key has
# expired (its coordinator died) any coordinator takes the request over. The request hash's
# `coordinator` field names the owner too, so an owner that was merely slow can renew a lapsed lease
# only while no other took the request over.
REQUEST_LEASE_PREFIX = "swarm:request-lease:"


def request_lease_key(request_id: str) -> str:
    return REQUEST_LEASE_PREFIX + request_id


# String per request followed through a coordinator that does not own it, with the lease's TTL,
# refreshed while that client follows: its owner keeps the run going (and its result) for it even
# when the owner's own clients went away.
REQUEST_WATCHED_PREFIX = "swarm:request-watched:"


def request_watched_key(request_id: str) -> str:
    return REQUEST_WATCHED_PREFIX + request_id


# ---------------------------------------------------------------- batch jobs

# Sorted set of batch job ids scored by creation time (ms), for `swarm batch list`.
# Ids whose job hash expired are dropped from it when listed.
BATCH_JOBS = "swarm:batch:jobs"

# Hash per job: state, total, done and failed counts, times, default model. Counts
# move only when a line's first result is recorded, so they count each line once.
BATCH_JOB_PREFIX = "swarm:batch:job:"

# Hash per job: 0-based line index -> RawRequest and custom id as JSON. Deleted once
# every line has a result; a stray work item for a deleted line is acknowledged unrun.
BATCH_LINES_PREFIX = "swarm:batch:lines:"

# Hash per job: 0-based line index -> the line's result as JSON, written with HSETNX
# so the first result of a line wins even when a crash made two runners run it.
BATCH_RESULTS_PREFIX = "swarm:batch:results:"

# Stream of work items {job, line} with one consumer group shared by all coordinators:
# an item stays pending until its result is recorded, so a runner that dies leaves its
# items to be claimed (XAUTOCLAIM) by the next. Acknowledged items are deleted.
BATCH_WORK = "swarm:batch:work"
BATCH_GROUP = "batch-runners"

# Request ids of batch lines start with BATCH_REQUEST_ID_PREFIX (clients may not use it); they are
# queued in the batch priority class (fairness.queue_tags.BATCH), behind any interactive request.
# A request kept by an older coordinator has no `score` in its hash: it is queued by enqueue time,
# batch lines raised by BATCH_QUEUE_OFFSET_MS.
BATCH_QUEUE_OFFSET_MS = 10**12


def queue_score(request_id: str, enqueued_ms: int) -> int:
    """The score of a request whose hash has none (queued before fair queuing)."""
    return enqueued_ms + (BATCH_QUEUE_OFFSET_MS if request_id.startswith(BATCH_REQUEST_ID_PREFIX) else 0)


def batch_job_key(job_id: str) -> str:
    return BATCH_JOB_PREFIX + job_id


def batch_lines_key(job_id: str) -> str:
    return BATCH_LINES_PREFIX + job_id


def batch_results_key(job_id: str) -> str:
    return BATCH_RESULTS_PREFIX + job_id


# String per planned model: the StageAssigner's offers, plan and who serves what, as JSON.
# A restarted coordinator (or the next one sharing this Redis) takes the plan over, so
# the workers serving it keep serving instead of being re-planned from nothing.
PLAN_PREFIX = "swarm:plan:"


def plan_key(model: str) -> str:
    return PLAN_PREFIX + model


# Hash planned model -> unix time a request first asked for it while no worker served it (HSETNX). Shared
# so that a request waiting on one coordinator moves nodes whose heartbeats reach another; an entry is
# deleted once a worker serves the model, and the key expires when no request has asked in vain for a
# load wait (planning.demand_store), so a want whose requests all gave up does not outlive them for long.
MODELS_WANTED = "swarm:models:wanted"

# Hash planned model -> unix time a request last asked for it, written at most once a second by each
# coordinator: the least recently used model is evicted first, counting every coordinator's requests.
MODELS_LAST_USED = "swarm:models:last-used"


# ---------------------------------------------------------------- API keys created at run time

# Hash per key created with `swarm keys create`, under the digest of its secret (tenancy.key_store), never
# the secret: its KeyRecord fields. Read on every call that presents the key, so a revoke or an expiry
# bites on every coordinator at once. Kept after a revoke (revoked=1) so its name stays taken and listed.
API_KEY_PREFIX = "swarm:api-key:"

# Hash key name -> digest: names are unique (HSETNX), and revoke finds a key by its name.
API_KEY_NAMES = "swarm:api-key-names"

# Hash per limited key: its token buckets (requests and tokens per minute: level and time of the last
# update), shared by every coordinator and changed only by Lua scripts, so two coordinators admitting
# at once cannot both spend the last token. Expires an hour after its last use (a full bucket again).
KEY_BUCKETS_PREFIX = "swarm:key-buckets:"

# Sorted set per key with a stream limit: one member per open stream, scored by its lease's end (ms).
# The coordinator relaying a stream renews its lease; a crashed coordinator's members lapse and
# stop counting, so a crash leaks no slot for longer than a lease.
KEY_STREAMS_PREFIX = "swarm:key-streams:"


def api_key_key(digest: str) -> str:
    return API_KEY_PREFIX + digest


def key_buckets_key(digest: str) -> str:
    return KEY_BUCKETS_PREFIX + digest


def key_streams_key(digest: str) -> str:
    return KEY_STREAMS_PREFIX + digest


# ---------------------------------------------------------------- usage (coordinator.usage)

# Hash per hour (unix time // 3600): "tokens\t<tenant>\t<model>\t<worker>\t<kind>" -> tokens (kind: prompt,
# cached_prompt, completion, requests) and "busy\t<worker>" -> busy seconds, moved only by HINCRBY in Lua
# scripts so coordinators add up. Expires after usage_store.RETENTION_S.
USAGE_HOUR_PREFIX = "swarm:usage:hour:"
# Hash of the same fields as the hour buckets, never expiring: the all-time totals, for /metrics.
USAGE_TOTAL = "swarm:usage:total"
# Sorted set of the hours that have a bucket (score: the hour), to sum a window.
USAGE_HOURS = "swarm:usage:hours"
# Hash worker id -> the cumulative busy seconds its last heartbeat reported: the next one adds what is new.
USAGE_BUSY_SEEN = "swarm:usage:busy-seen"
# Hash worker id -> its stated watts and hourly cost as JSON, for energy and cost per token.
USAGE_WORKER_RATES = "swarm:usage:worker-rates"


def usage_hour_key(hour: int) -> str:
    return f"{USAGE_HOUR_PREFIX}{hour}"
