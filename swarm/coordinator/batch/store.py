"""BatchStore: batch jobs in Redis (their lines, progress, results) and the stream of their work items."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.batch.submitter import NO_SUBMITTER, SUBMITTER_FIELDS, Submitter
from swarm.shared.batch_types import BatchLimits, BatchLine, BatchResult, BatchState, BatchSummary
from swarm.shared.failures import redis_full
from swarm.shared.redis_connection import NO_REPLICAS, DurableWrites
from swarm.shared.types import FinishReason, RawRequest

_SUBMIT_CHUNK = 1000  # lines per Redis command while storing a job
_STAGING_S = 3600  # lines stored for a job that never appeared (the coordinator died) expire after this
# Jobs may fill Redis to this share of its maxmemory: the rest stays for heartbeats and interactive
# requests, which a Redis full to the brim (noeviction) would refuse as well, stopping the whole swarm.
_BATCH_SHARE_OF_MAXMEMORY = 0.9
_BYTES_PER_LINE = 200  # Redis's own cost of a line beyond its JSON: a hash field and a work item

# Records a line's first result and moves the counts; the last line marks the job done,
# drops its lines and starts the expiry clock. Atomic, so a count never moves twice.
# KEYS: results, job, lines. ARGV: index, result JSON, "done" or "failed", now ms, keep s.
_RECORD = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
local job = redis.call('HMGET', KEYS[2], 'done', 'failed', 'total', 'state')
if job[4] == 'running' and tonumber(job[1]) + tonumber(job[2]) >= tonumber(job[3]) then
  redis.call('HSET', KEYS[2], 'state', 'done', 'finished_ms', ARGV[4])
  redis.call('DEL', KEYS[3])
  job[4] = 'done'
end
if job[4] ~= 'running' then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return 1
"""

# Cancels a running job: its lines go, so work items not yet started are acknowledged unrun.
# KEYS: job, lines, results. ARGV: now ms, keep s. Returns 0 when the job is unknown.
_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if state == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_ms', ARGV[1])
  redis.call('DEL', KEYS[2])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return 1
"""


# One work item per line, added by Redis itself: a job of 100,000 lines is one command here.
# KEYS: the work stream. ARGV: job id, line count.
_QUEUE_LINES = """
for line = 0, tonumber(ARGV[2]) - 1 do
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[1], 'line', line)
end
return 1
"""


# What a runner reads of a line's job: whether it runs, its model, and who submitted it.
_JOB_FIELDS = ["state", "model", *SUBMITTER_FIELDS]


@dataclass(frozen=True)
class WorkItem:
    """One line of one job to run, as a stream entry a runner has claimed."""

    entry_id: str
    job_id: str
    index: int  # 0-based


@dataclass(frozen=True)
class LineWork:
    line: BatchLine
    job_model: str  # for lines that name no model
    submitter: Submitter = NO_SUBMITTER


class BatchStore:
    """Jobs and results in Redis; a job created and a result recorded wait for `durable` (a replica, under Sentinel)."""

    def __init__(self, redis: Redis, limits: BatchLimits, durable: DurableWrites = NO_REPLICAS) -> None:
        self._redis = redis
        self._limits = limits
        self._durable = durable
        self._record = redis.register_script(_RECORD)
        self._cancel = redis.register_script(_CANCEL)
        self._queue_lines = redis.register_script(_QUEUE_LINES)

    # ------------------------------------------------------------ jobs

    async def create(
        self, job_id: str, model: str, lines: list[BatchLine], now_ms: int, submitter: Submitter = NO_SUBMITTER
    ) -> BatchSummary:
        """Stores the job's lines, then makes the job and one work item per line appear at once (MULTI/EXEC).

        Lines go in chunks, so a big job does not hold up the token streams this event loop
        relays; until the job appears they expire, so lines a crash left without a job vanish.
        """
        lines_key = keys.batch_lines_key(job_id)
        encoded = [_line_to_json(line) for line in lines]
        await self._check_room(sum(map(len, encoded)) + _BYTES_PER_LINE * len(lines))
        try:
            for start in range(0, len(lines), _SUBMIT_CHUNK):
                chunk = encoded[start : start + _SUBMIT_CHUNK]
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hset(lines_key, mapping={str(start + i): line for i, line in enumerate(chunk)})
                    pipe.expire(lines_key, _STAGING_S)
                    await pipe.execute()
        except BaseException:
            await self._redis.delete(lines_key)  # a refused job gives its memory back at once (DEL runs when full)
            raise
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.batch_job_key(job_id),
                mapping={
                    "state": BatchState.RUNNING.value,
                    "total": len(lines),
                    "done": 0,
                    "failed": 0,
                    "created_ms": now_ms,
                    "finished_ms": 0,
                    "model": model,
                    **submitter.to_fields(),
                },
            )
            pipe.persist(lines_key)
            await self._queue_lines(keys=[keys.BATCH_WORK], args=[job_id, len(lines)], client=pipe)
            pipe.zadd(keys.BATCH_JOBS, {job_id: now_ms})
            await pipe.execute()
        await self._durable.confirm()
        return BatchSummary(job_id, BatchState.RUNNING, len(lines), 0, 0, now_ms, 0, model, submitter.owner)

    async def _check_room(self, job_bytes: int) -> None:
        """RESOURCE_EXHAUSTED before writing a job that would fill Redis past the batch share of its maxmemory."""
        memory = await self._redis.info("memory")
        limit = int(memory.get("maxmemory", 0))
        if limit and int(memory["used_memory"]) + job_bytes > limit * _BATCH_SHARE_OF_MAXMEMORY:
            raise redis_full()

    async def summary(self, job_id: str) -> BatchSummary | None:
        data: dict[str, str] = await self._redis.hgetall(keys.batch_job_key(job_id))  # type: ignore[assignment]
        return _summary(job_id, data)

    async def summaries(self) -> list[BatchSummary]:
        """Every job Redis still holds, newest first (for `swarm batch list` and dashboards)."""
        job_ids = [str(j) for j in await self._redis.zrevrange(keys.BATCH_JOBS, 0, -1)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(keys.batch_job_key(job_id))
            found = await pipe.execute()
        summaries, expired = [], []
        for job_id, data in zip(job_ids, found, strict=True):
            summary = _summary(job_id, data)
            if summary is None:
                expired.append(job_id)
            else:
                summaries.append(summary)
        if expired:
            await self._redis.zrem(keys.BATCH_JOBS, *expired)
        return summaries

    async def cancel(self, job_id: str, now_ms: int) -> BatchSummary | None:
        job_keys = [keys.batch_job_key(job_id), keys.batch_lines_key(job_id), keys.batch_results_key(job_id)]
        if not await self._cancel(keys=job_keys, args=[now_ms, self._limits.keep_finished_s]):
            return None
        return await self.summary(job_id)

    async def results(self, job_id: str, start: int, count: int) -> list[BatchResult | None]:
        """Results of lines [start, start + count), None where a line has none yet."""
        indexes = [str(i) for i in range(start, start + count)]
        found: list[str | None] = await self._redis.hmget(keys.batch_results_key(job_id), indexes)  # type: ignore[assignment]
        return [None if raw is None else _result_from_json(start + i + 1, raw) for i, raw in enumerate(found)]

    # ------------------------------------------------------------ work items

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(keys.BATCH_WORK, keys.BATCH_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def next_items(self, consumer: str, count: int, block_ms: int) -> list[WorkItem]:
        """Work items no runner has taken yet, waiting up to block_ms for one."""
        answer: Any = await self._redis.xreadgroup(
            keys.BATCH_GROUP, consumer, {keys.BATCH_WORK: ">"}, count=count, block=block_ms
        )
        return [_item(entry_id, fields) for _stream, entries in answer or [] for entry_id, fields in entries]

    async def claim_stale(self, consumer: str, min_idle_ms: int, count: int) -> list[WorkItem]:
        """Work items taken by a runner that has not touched them for min_idle_ms: it died."""
        answer = await self._redis.xautoclaim(
            keys.BATCH_WORK, keys.BATCH_GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
        )
        return [_item(entry_id, fields) for entry_id, fields in answer[1] if fields]

    async def keep_claimed(self, consumer: str, entry_ids: list[str]) -> None:
        """Resets the idle time of items this runner is still running, so no other runner claims them."""
        if entry_ids:
            await self._redis.xclaim(
                keys.BATCH_WORK, keys.BATCH_GROUP, consumer, min_idle_time=0, message_ids=[*entry_ids], justid=True
            )

    async def forget_consumers(self, min_idle_ms: int) -> int:
        """Drops runners idle this long with nothing pending: each coordinator start adds one to the group."""
        consumers: list[dict[str, Any]] = await self._redis.xinfo_consumers(keys.BATCH_WORK, keys.BATCH_GROUP)
        gone = [c["name"] for c in consumers if c["pending"] == 0 and c["idle"] >= min_idle_ms]
        for name in gone:
            await self._redis.xgroup_delconsumer(keys.BATCH_WORK, keys.BATCH_GROUP, name)
        return len(gone)

    async def work_for(self, item: WorkItem) -> LineWork | None:
        """The line to run, or None when it needs no run: job cancelled or expired, or result recorded."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.batch_job_key(item.job_id), _JOB_FIELDS)
            pipe.hget(keys.batch_lines_key(item.job_id), str(item.index))
            pipe.hexists(keys.batch_results_key(item.job_id), str(item.index))
            job, raw_line, has_result = await pipe.execute()
        fields = dict(zip(_JOB_FIELDS, job, strict=True))
        if fields["state"] != BatchState.RUNNING.value or raw_line is None or has_result:
            return None
        return LineWork(_line_from_json(raw_line), fields["model"] or "", Submitter.from_fields(fields))

    async def record(self, job_id: str, result: BatchResult, now_ms: int) -> bool:
        """Keeps the line's result unless it has one already; True when this one was kept."""
        job_keys = [keys.batch_results_key(job_id), keys.batch_job_key(job_id), keys.batch_lines_key(job_id)]
        outcome = "failed" if result.error else "done"
        args: list[str | int] = [
            result.line - 1,
            _result_to_json(result),
            outcome,
            now_ms,
            self._limits.keep_finished_s,
        ]
        kept = bool(await self._record(keys=job_keys, args=args))
        if kept:
            await self._durable.confirm()  # before the work item is acknowledged, so a failover keeps the result
        return kept

    async def finish_item(self, item: WorkItem) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(keys.BATCH_WORK, keys.BATCH_GROUP, item.entry_id)
            pipe.xdel(keys.BATCH_WORK, item.entry_id)
            await pipe.execute()


def _item(entry_id: str, fields: dict[str, str]) -> WorkItem:
    return WorkItem(entry_id, fields["job"], int(fields["line"]))


def _summary(job_id: str, data: dict[str, str]) -> BatchSummary | None:
    if "state" not in data:
        return None
    return BatchSummary(
        job_id=job_id,
        state=BatchState(data["state"]),
        total=int(data["total"]),
        done=int(data["done"]),
        failed=int(data["failed"]),
        created_ms=int(data["created_ms"]),
        finished_ms=int(data["finished_ms"]),
        model=data.get("model", ""),
        owner=data.get("owner", ""),
    )


def _line_to_json(line: BatchLine) -> str:
    # vars, not asdict: RawRequest is flat, and asdict's deep copy costs seconds on a 100,000-line job.
    return json.dumps({"request": vars(line.request), "id": line.custom_id}, separators=(",", ":"))


def _line_from_json(text: str) -> BatchLine:
    data: dict[str, Any] = json.loads(text)
    request = data["request"]
    request["stop"] = tuple(request["stop"])
    return BatchLine(RawRequest(**request), data["id"])


def _result_to_json(result: BatchResult) -> str:
    data = asdict(result)
    del data["line"]  # the hash field says which line
    return json.dumps(data, separators=(",", ":"))


def _result_from_json(line: int, text: str) -> BatchResult:
    data: dict[str, Any] = json.loads(text)
    reason = data.pop("finish_reason")
    return BatchResult(line=line, finish_reason=FinishReason(reason) if reason else None, **data)
