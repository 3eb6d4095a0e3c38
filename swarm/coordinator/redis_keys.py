"""Every Redis key swarm uses, in one place, with why it exists.

Nothing the coordinator holds in memory is the only copy of anything a client or
worker was promised: a restarted coordinator rebuilds its view from these keys.
"""

# Hash worker_id -> WorkerInfo as JSON: the registry. Outlives coordinator restarts
# so workers keep being known (and routable) while the coordinator is replaced.
WORKERS = "swarm:workers"

# Hash worker_id -> unix time of its last heartbeat, for "last heartbeat age".
LAST_SEEN = "swarm:last_seen"

# String per worker, WorkerLoad as JSON, with a TTL of a few heartbeats: its
# existence is the worker's liveness. An expired key means the worker is down.
HEARTBEAT_PREFIX = "swarm:heartbeat:"

# Sorted set of request ids waiting for a worker, scored by enqueue time (ms), so
# the oldest request is served first and a restart loses no waiting request.
QUEUE = "swarm:queue"

# Set of request ids handed to a worker and not yet finished. A coordinator that
# starts finds here the requests its predecessor was running and queues them again.
RUNNING = "swarm:running"

# Hash per request: its GenerationRequest as JSON, its state and, once done, its
# result. Deleted once the result reached a client; otherwise it expires after
# RESULT_TTL_S so results nobody comes back for do not pile up.
REQUEST_PREFIX = "swarm:request:"
RESULT_TTL_S = 24 * 3600


def heartbeat_key(worker_id: str) -> str:
    return HEARTBEAT_PREFIX + worker_id


def request_key(request_id: str) -> str:
    return REQUEST_PREFIX + request_id
