"""The job queue: submit and watch jobs (any service), claim and finish them (workers).

Redis layout (``bf`` is the prefix):

* ``bf:q:{kind}`` — one stream per kind with the consumer group ``workers``;
  an entry carries only the job id. Delivered-but-unacknowledged entries are
  the jobs being worked on; an entry idle longer than the heartbeat timeout
  belongs to a dead worker and is reclaimed with XAUTOCLAIM.
* ``bf:job:{id}`` — hash with the job's state, progress, request and result.
* ``bf:ev:{id}`` — stream of the job's events (history for late subscribers).
* ``bf:idem:{kind}:{owner}:{key}`` — idempotency key -> job id.
* ``bf:dlq:{kind}`` — dead-letter stream of jobs that failed too often.
* ``bf:q:{kind}:waiting`` — sorted set of the queued job ids no worker has taken,
  scored by an enqueue sequence (``bf:q:{kind}:seq``): a queue position is one
  ZRANK, O(log n), exact at the moment it is read.
* ``bf:q:{kind}:delayed`` — failed jobs waiting out their retry backoff
  (exponential with jitter), scored by the time they go back into the queue.
* ``bf:q:{kind}:stats`` — moving averages of run time per second of audio and
  of job size, for ETAs (:mod:`.eta`).
* ``bf:deadlines`` — job id -> deadline; a job not finished by then is
  cancelled (reason ``deadline``), queued or running.
* ``bf:wh:*`` — webhook deliveries (:mod:`.webhooks`).

Delivery is at-least-once; every transition is an atomic Lua script
(:mod:`.scripts`), so completion is idempotent and the first result wins.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from beatflow.common import metrics
from beatflow.common.errors import AlreadyExists, InvalidArgument, NotFound
from beatflow.common.jobs import scripts
from beatflow.common.jobs.eta import KindStats, estimate
from beatflow.common.jobs.model import JobCancelled, JobEvent, JobRecord, JobState, as_str, decode_mapping
from beatflow.common.jobs.outputs import OutputRegistrar
from beatflow.common.jobs.webhooks import DEFAULT_EVENTS, EVENT_TYPES, check_target
from beatflow.common.redisreads import PipelinedReads

log = logging.getLogger(__name__)

GROUP = "workers"
MAX_ERROR_CHARS = 4000
_KIND_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_IDEMPOTENCY_KEY = 256

RegisterOutputs = Callable[[str, Mapping[str, str]], Awaitable[None]]
"""``register(owner, result_blobs)``: run by :meth:`ClaimedJob.complete` before the job is SUCCEEDED."""
_MAX_JOB_ID = 128
_EVENT_ID_RE = re.compile(r"^\d{1,20}(-\d{1,20})?$")


def _event_cursor(after: str) -> str:
    """Validate a client-supplied event id to resume after ("" or "0": from the start)."""
    if not after:
        return "0"
    if not _EVENT_ID_RE.match(after):
        raise InvalidArgument(f"invalid event id {after!r}")
    return after


def _now() -> str:
    return repr(time.time())


def _stream_entries(resp: Any) -> list[tuple[str, Any]]:
    """Entries of an XREAD/XREADGROUP reply (RESP2 list or RESP3 dict) for one stream."""
    if not resp:
        return []
    is_dict = isinstance(resp, dict)
    out: list[tuple[str, Any]] = []
    for item in resp.items() if is_dict else resp:
        entries = item[1]
        if is_dict:  # RESP3: {stream: [[(id, fields), ...]]}
            entries = entries[0] if entries else []
        for entry_id, fields in entries:
            if entry_id is not None:
                out.append((as_str(entry_id), fields))
    return out


def request_fingerprint(request: Any) -> str:
    """SHA-256 of the canonical JSON of a request: what an idempotency key is bound to."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def connect_redis(url: str) -> aioredis.Redis:
    """A Redis client for the queue: blocking reads take up to a second, so the read
    timeout is generous (a busy worker's loop may answer late; redis-py's 5 s default
    then drops replies that carried delivered jobs), while connects fail fast. A pooled
    connection that Redis closed (a restart) is reconnected and the command sent again
    once, instead of failing the first request after Redis is back."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=30,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=15,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 1),
        retry_on_error=[RedisConnectionError],
    )


class JobQueue:
    """Durable job queue on Redis Streams consumer groups (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str = "bf",
        retry_limit: int = 3,
        heartbeat_timeout_s: float = 30.0,
        retention_s: float = 7 * 86400.0,
        event_maxlen: int = 10_000,
        retry_backoff_s: float = 0.0,
        retry_backoff_max_s: float = 600.0,
        webhook_allow_private: bool = False,
        register_outputs: RegisterOutputs | None = None,
        reads: PipelinedReads | None = None,
    ) -> None:
        if retry_limit < 0:
            raise ValueError("retry_limit must be >= 0")
        if heartbeat_timeout_s <= 0:
            raise ValueError("heartbeat_timeout_s must be > 0")
        self.redis = redis
        self.prefix = prefix
        self.retry_limit = retry_limit
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.retention_s = retention_s
        self.event_maxlen = event_maxlen
        # first retry after about retry_backoff_s, doubling per attempt (0: retry at once)
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        # operators may allow webhooks to loopback/private addresses (tests, closed networks)
        self.webhook_allow_private = webhook_allow_private
        # a finished job's outputs are registered (with vcs) by the worker that completes it
        self.register_outputs = register_outputs
        # status reads (find) over one pipelined connection instead of redis-py's pool, when given
        self.reads = reads
        self._next_promote: dict[str, float] = {}
        self._groups: set[str] = set()
        # stale entries (dead workers) are looked for at most this often per kind
        self._reclaim_interval_s = min(1.0, heartbeat_timeout_s / 4)
        self._next_reclaim: dict[str, float] = {}
        self._reclaim_cursor: dict[str, str] = {}
        self._submit = redis.register_script(scripts.SUBMIT)
        self._start = redis.register_script(scripts.START)
        self._heartbeat = redis.register_script(scripts.HEARTBEAT)
        self._progress = redis.register_script(scripts.PROGRESS)
        self._complete = redis.register_script(scripts.COMPLETE)
        self._fail = redis.register_script(scripts.FAIL)
        self._release = redis.register_script(scripts.RELEASE)
        self._cancel = redis.register_script(scripts.CANCEL)
        self._mark_cancelled = redis.register_script(scripts.MARK_CANCELLED)
        self._depth = redis.register_script(scripts.DEPTH)
        self._promote = redis.register_script(scripts.PROMOTE)
        self._deadline = redis.register_script(scripts.DEADLINE)
        self._status = redis.register_script(scripts.STATUS)

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        redis: aioredis.Redis | None = None,
        *,
        completes_jobs: bool = True,
        reads: PipelinedReads | None = None,
    ) -> JobQueue:
        """A queue configured from ``CommonSettings`` (redis_url, job_* fields; vcs_addr for output registration).

        ``completes_jobs=False`` for a process that only submits and reads jobs (the gateway): it
        registers no outputs, so it needs no vcs address.
        """
        client = redis if redis is not None else connect_redis(settings.redis_url)
        return cls(
            client,
            retry_limit=settings.job_retry_limit,
            heartbeat_timeout_s=settings.job_heartbeat_timeout_s,
            retention_s=settings.job_retention_s,
            retry_backoff_s=getattr(settings, "job_retry_backoff_s", 0.0),
            retry_backoff_max_s=getattr(settings, "job_retry_backoff_max_s", 600.0),
            webhook_allow_private=getattr(settings, "job_webhook_allow_private_targets", False),
            register_outputs=OutputRegistrar.from_settings(settings) if completes_jobs else None,
            reads=reads,
        )

    @property
    def max_attempts(self) -> int:
        """A job runs at most once plus ``retry_limit`` retries."""
        return self.retry_limit + 1

    # -- keys -------------------------------------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def events_key(self, job_id: str) -> str:
        return f"{self.prefix}:ev:{job_id}"

    def queue_key(self, kind: str) -> str:
        return f"{self.prefix}:q:{kind}"

    def dlq_key(self, kind: str) -> str:
        return f"{self.prefix}:dlq:{kind}"

    def delayed_key(self, kind: str) -> str:
        return f"{self.queue_key(kind)}:delayed"

    def deadlines_key(self) -> str:
        return f"{self.prefix}:deadlines"

    def idempotency_key(self, kind: str, owner: str, key: str) -> str:
        # scoped by owner: one user's key never resolves to another user's job
        # (':' in the owner is escaped, so owner "a:b" + key "c" != owner "a" + key "b:c")
        owner = owner.replace("%", "%25").replace(":", "%3A")
        return f"{self.prefix}:idem:{kind}:{owner}:{key}"

    def _job_keys(self, job_id: str, kind: str) -> list[str]:
        return [self.job_key(job_id), self.events_key(job_id), self.queue_key(kind), self.dlq_key(kind)]

    def _common_args(self) -> list[Any]:
        return [GROUP, _now(), max(1, int(self.retention_s * 1000)), self.event_maxlen]

    async def _ensure_group(self, kind: str) -> None:
        if kind in self._groups:
            return
        try:
            await self.redis.xgroup_create(self.queue_key(kind), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(kind)

    # -- producers and watchers ----------------------------------------------------------

    async def submit(
        self,
        kind: str,
        request: dict[str, Any],
        *,
        owner: str = "",
        idempotency_key: str | None = None,
        deadline_s: float | None = None,
        size_s: float = 0.0,
        webhook_url: str = "",
        webhook_events: Sequence[str] = (),
        fingerprint: str | None = None,
    ) -> JobRecord:
        """Queue a job; with ``idempotency_key``, the same (kind, owner, key) returns the same job.

        ``deadline_s``: cancel the job (reason ``deadline``) if it has not finished
        that many seconds from now. ``size_s``: seconds of audio the job produces or
        reads, for ETAs. ``webhook_url``/``webhook_events``: signed notifications of
        the job's events (see :mod:`.webhooks`); the target is checked here.

        The key is bound to the request it came with (``fingerprint``, by default a
        hash of ``request``; callers that fill in defaults such as a random seed pass
        the hash of what the client sent): the same key with a different request is
        refused with AlreadyExists naming the earlier job, never answered with it.
        """
        if deadline_s is not None and not 0 < deadline_s <= 366 * 86400:  # (NaN fails too)
            raise InvalidArgument("deadline must be between 0 and 366 days from now")
        if not 0 <= size_s < 1e7:
            raise InvalidArgument("job size must be >= 0")
        events = self._webhook_events(webhook_url, webhook_events)
        if webhook_url:
            await check_target(webhook_url, allow_private=self.webhook_allow_private)
        if not _KIND_RE.match(kind):
            raise InvalidArgument(f"invalid job kind {kind!r}")
        if idempotency_key is not None and not (0 < len(idempotency_key) <= _MAX_IDEMPOTENCY_KEY):
            raise InvalidArgument(f"idempotency key must be 1..{_MAX_IDEMPOTENCY_KEY} characters")
        try:
            body = json.dumps(request, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"job request is not JSON: {exc}") from exc
        await self._ensure_group(kind)
        job_id = uuid.uuid4().hex
        keys = self._job_keys(job_id, kind)[:3]
        use_idem = idempotency_key is not None
        keys.append(self.idempotency_key(kind, owner, idempotency_key) if idempotency_key else keys[0])
        deadline_at = repr(time.time() + deadline_s) if deadline_s else "0"
        if fingerprint is None:
            fingerprint = request_fingerprint(request)
        out = await self._submit(
            keys=keys,
            args=[
                *self._common_args(),
                job_id,
                kind,
                owner,
                body,
                "1" if use_idem else "0",
                deadline_at,
                repr(float(size_s)),
                webhook_url,
                ",".join(events),
                fingerprint,
            ],
        )
        if int(out[0]) == 0:  # the idempotency key names an existing job
            existing = as_str(out[1])
            earlier = await self.redis.hget(self.job_key(existing), "request_fp")
            if earlier is not None and as_str(earlier) not in ("", fingerprint):
                raise AlreadyExists(
                    f"this idempotency key was already used for a different request (task {existing}); "
                    "send a new key for a new request"
                )
            return await self.get(existing)
        return self._status_record(out[2:])

    @staticmethod
    def _webhook_events(url: str, events: Sequence[str]) -> list[str]:
        if not url:
            if events:
                raise InvalidArgument("webhook events need a webhook URL")
            return []
        chosen = list(dict.fromkeys(events)) if events else list(DEFAULT_EVENTS)
        unknown = [e for e in chosen if e not in EVENT_TYPES]
        if unknown:
            raise InvalidArgument(f"unknown webhook events {unknown}; known: {', '.join(EVENT_TYPES)}")
        return chosen

    async def find(self, job_id: str) -> JobRecord | None:
        """The job with its live queue position and ETA, or None when unknown (or expired)."""
        if not job_id or len(job_id) > _MAX_JOB_ID:
            return None
        # EVALSHA straight away: the script object's own call checks its client against a
        # typing Protocol first, which cost more than the rest of the call (the status read
        # is every task poll); the object loads the script when Redis does not know it yet
        try:
            if self.reads is not None:
                out = await self.reads.execute("EVALSHA", self._status.sha, 1, self.job_key(job_id), GROUP)
            else:
                out = await self.redis.evalsha(self._status.sha, 1, self.job_key(job_id), GROUP)
        except NoScriptError:
            out = await self._status(keys=[self.job_key(job_id)], args=[GROUP])
        if not out:
            return None
        return self._status_record(out)

    def _status_record(self, out: Sequence[Any]) -> JobRecord:
        record = JobRecord.from_redis(out[6:])
        record.max_attempts = self.max_attempts
        position = int(out[0])
        stats = KindStats(
            spu=float(as_str(out[3]) or 0),
            mean_size=float(as_str(out[4]) or 0),
            samples=int(as_str(out[5]) or 0),
            running=int(out[1]),
            waiting=int(out[2]),
        )
        if record.state == JobState.QUEUED:
            # in the stream: its rank; waiting out a retry backoff: everything queued now is ahead
            record.queue_position = position if position >= 0 else stats.waiting
        record.eta_s, record.eta_basis = estimate(record, stats, time.time())
        return record

    async def get(self, job_id: str) -> JobRecord:
        record = await self.find(job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} not found")
        return record

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job: a queued one is CANCELLED at once, a running one is flagged for its worker."""
        record = await self.get(job_id)
        outcome = await self._cancel(keys=self._job_keys(job_id, record.kind)[:3], args=self._common_args())
        if outcome == -1:
            raise NotFound(f"job {job_id!r} not found")
        if outcome == 1:
            metrics.observe_job(record.kind, JobState.CANCELLED.name, None)
        return await self.get(job_id)

    async def history(self, job_id: str, after: str = "0") -> list[JobEvent]:
        """Events recorded so far (no waiting)."""
        after = _event_cursor(after)
        start = "-" if after in ("0", "0-0") else f"({after}"
        entries = await self.redis.xrange(self.events_key(job_id), min=start, max="+") or []
        return [JobEvent.from_entry(job_id, eid, fields) for eid, fields in entries]

    async def events(self, job_id: str, after: str = "0", *, block_ms: int = 1000) -> AsyncIterator[JobEvent]:
        """Replay the job's events after ``after`` (default: all), then follow live ones.

        Ends after the terminal event, or at once for a job already finished
        whose events after ``after`` were all seen. NotFound for unknown jobs.
        """
        last = _event_cursor(after)
        job_key, ev_key = self.job_key(job_id), self.events_key(job_id)
        if not job_id or len(job_id) > _MAX_JOB_ID or not await self.redis.exists(job_key, ev_key):
            raise NotFound(f"job {job_id!r} not found")
        while True:
            entries = _stream_entries(await self.redis.xread({ev_key: last}, count=100, block=block_ms))
            if not entries:
                state = await self.redis.hget(job_key, "state")
                if state is not None and not JobState.parse(state).terminal:
                    continue
                # finished (or expired): take what is left, without waiting
                entries = _stream_entries(await self.redis.xread({ev_key: last}, count=100))
                if not entries:
                    return
            live = await self.find(job_id)
            for entry_id, fields in entries:
                event = JobEvent.from_entry(job_id, entry_id, fields)
                if live is not None:
                    event.queue_position, event.eta_s = live.queue_position, live.eta_s
                    event.attempts, event.retry_at = live.attempts, live.retry_at
                last = event.event_id
                yield event
                if event.terminal:
                    return

    async def wait(self, job_id: str, timeout_s: float | None = None) -> JobRecord:
        """Wait until the job is in a terminal state and return it (TimeoutError after ``timeout_s``)."""

        async def follow() -> None:
            async for _event in self.events(job_id, block_ms=500):
                pass

        await asyncio.wait_for(follow(), timeout_s)
        return await self.get(job_id)

    async def queue_position(self, job_id: str) -> int:
        """Jobs ahead of this one that no worker has taken yet; 0 once it runs (O(log n))."""
        return (await self.get(job_id)).queue_position

    async def depth(self, kind: str) -> int:
        """Jobs of ``kind`` waiting for a worker (also sets the queue-depth gauge)."""
        n = int(await self._depth(keys=[self.queue_key(kind)], args=[GROUP]))
        metrics.QUEUE_DEPTH.labels(kind=kind).set(n)
        return n

    async def dead_letters(self, kind: str, count: int = 1000) -> list[JobRecord]:
        """Jobs of ``kind`` that failed on every attempt, oldest first."""
        out: list[JobRecord] = []
        for _entry_id, fields in await self.redis.xrange(self.dlq_key(kind), count=count) or []:
            f = decode_mapping(fields)
            record = await self.find(f.get("job", ""))
            if record is None:  # hash expired: the dead-letter entry still tells the story
                record = JobRecord(
                    id=f.get("job", ""),
                    kind=f.get("kind", kind),
                    state=JobState.DEAD,
                    error=f.get("error", ""),
                    attempts=int(f.get("attempts") or 0),
                    owner=f.get("owner", ""),
                    request=json.loads(f.get("request") or "{}"),
                    finished_at=float(f.get("ts") or 0),
                )
            out.append(record)
        return out

    # -- workers --------------------------------------------------------------------------

    async def claim(self, kind: str, consumer: str, *, count: int = 1, block_ms: int = 1000) -> list[ClaimedJob]:
        """Take up to ``count`` jobs: first those of dead workers (XAUTOCLAIM), then new ones.

        Blocks up to ``block_ms`` for new jobs when there is nothing to
        reclaim; returns an empty list when none came.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        await self._ensure_group(kind)
        try:
            return await self._claim(kind, consumer, count, block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.discard(kind)  # the stream was removed behind our back: recreate it
            await self._ensure_group(kind)
            return []

    async def _claim(self, kind: str, consumer: str, count: int, block_ms: int) -> list[ClaimedJob]:
        q = self.queue_key(kind)
        jobs: list[ClaimedJob] = []
        await self._maybe_promote(kind)
        if time.monotonic() >= self._next_reclaim.get(kind, 0.0):
            # XAUTOCLAIM scans a bounded slice of the pending list per call; the
            # cursor carries the scan over calls so a stale entry behind many
            # live ones is found too. Once the scan wraps, pause a little.
            cursor = self._reclaim_cursor.get(kind, "0-0")
            min_idle_ms = int(self.heartbeat_timeout_s * 1000)
            reclaimed = await self.redis.xautoclaim(q, GROUP, consumer, min_idle_ms, start_id=cursor, count=count)
            cursor = as_str(reclaimed[0]) or "0-0"
            self._reclaim_cursor[kind] = cursor
            stale = [(as_str(eid), fields) for eid, fields in reclaimed[1] if eid is not None]
            more = cursor != "0-0" or len(reclaimed[1]) >= count
            self._next_reclaim[kind] = time.monotonic() + (0.0 if more else self._reclaim_interval_s)
            jobs = await self._start_entries(kind, consumer, stale)
            for job in jobs:
                log.warning("job %s reclaimed from a worker that stopped heartbeating", job.id)
        if len(jobs) < count:
            block = block_ms if (block_ms > 0 and not jobs) else None
            resp = await self.redis.xreadgroup(GROUP, consumer, {q: ">"}, count=count - len(jobs), block=block)
            jobs += await self._start_entries(kind, consumer, _stream_entries(resp))
        return jobs

    async def _start_entries(self, kind: str, consumer: str, entries: Sequence[tuple[str, Any]]) -> list[ClaimedJob]:
        if not entries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, fields in entries:
            job_id = decode_mapping(fields).get("job", "")
            await self._start(
                keys=self._job_keys(job_id, kind),
                args=[*self._common_args(), entry_id, consumer, self.max_attempts],
                client=pipe,
            )
        jobs: list[ClaimedJob] = []
        for (entry_id, _fields), out in zip(entries, await pipe.execute(), strict=True):
            code = int(out[0])
            if code == 2:
                log.warning("job of entry %s is dead: its workers kept stopping", entry_id)
                metrics.observe_job(kind, JobState.DEAD.name, None)
            elif code == 3:
                metrics.observe_job(kind, JobState.CANCELLED.name, None)
            if code != 1:
                continue
            record = JobRecord.from_redis(out[2:])
            jobs.append(ClaimedJob(self, record, entry_id, int(out[1]), consumer))
        return jobs

    # -- retry backoff and deadlines ----------------------------------------------------

    def retry_delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1, 2, ...): exponential with "equal jitter".

        Half the delay is fixed and half random, so retries of jobs that failed
        together spread out, yet each waits at least half its step.
        """
        if self.retry_backoff_s <= 0:
            return 0.0
        step = min(self.retry_backoff_max_s, self.retry_backoff_s * 2 ** max(0, attempt - 1))
        return float(step / 2 + random.uniform(0, step / 2))

    async def _maybe_promote(self, kind: str) -> None:
        if time.monotonic() < self._next_promote.get(kind, 0.0):
            return
        self._next_promote[kind] = time.monotonic() + 0.2
        await self.promote_due(kind)

    async def promote_due(self, kind: str, limit: int = 100) -> int:
        """Put failed jobs whose retry backoff is over back into the queue; returns how many."""
        due = await self.redis.zrangebyscore(self.delayed_key(kind), "-inf", repr(time.time()), start=0, num=limit)
        if not due:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for raw in due:
            await self._promote(keys=self._job_keys(as_str(raw), kind)[:3], args=self._common_args(), client=pipe)
        return sum(int(x) for x in await pipe.execute())

    async def expire_deadlines(self, limit: int = 100) -> int:
        """Cancel (reason ``deadline``) the jobs whose deadline passed; returns how many."""
        due = await self.redis.zrangebyscore(self.deadlines_key(), "-inf", repr(time.time()), start=0, num=limit)
        n = 0
        for raw in due:
            job_id = as_str(raw)
            kind = await self.redis.hget(self.job_key(job_id), "kind")
            if kind is None:  # expired or unknown: forget it
                await self.redis.zrem(self.deadlines_key(), job_id)
                continue
            if await self.cancel_at_deadline(job_id, as_str(kind)):
                n += 1
        return n

    async def cancel_at_deadline(self, job_id: str, kind: str) -> bool:
        """Cancel the job if its deadline has passed (atomic; False if finished or not due)."""
        outcome = int(await self._deadline(keys=self._job_keys(job_id, kind)[:3], args=self._common_args()))
        if outcome == 1:
            log.info("job %s cancelled: its deadline passed", job_id)
            metrics.observe_job(kind, JobState.CANCELLED.name, None)
        return outcome == 1


class ClaimedJob:
    """A job held by this worker, until it is completed, failed, cancelled or released."""

    def __init__(self, queue: JobQueue, record: JobRecord, entry: str, attempt: int, consumer: str) -> None:
        self.queue = queue
        self.record = record
        self.entry = entry
        self.attempt = attempt
        self.consumer = consumer
        self.cancel_requested = record.cancel_requested
        self.lost = False  # another worker took the job over (our heartbeats were too late)
        self.finished = False

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def request(self) -> dict[str, Any]:
        return self.record.request

    def __repr__(self) -> str:
        return f"ClaimedJob(id={self.id!r}, kind={self.kind!r}, attempt={self.attempt})"

    def _keys(self) -> list[str]:
        return self.queue._job_keys(self.id, self.kind)

    def _held_args(self) -> list[Any]:
        return [*self.queue._common_args(), self.consumer, self.attempt, self.entry]

    async def progress(self, fraction: float, stage: str = "", chunk_blob: str = "") -> float:
        """Report progress (0..1, never lower than before) and refresh the claim.

        Returns the recorded progress; also refreshes ``cancel_requested``.
        Call it on the event loop; from a thread use :meth:`progress_callback`.
        """
        if math.isnan(fraction):
            raise ValueError("progress is NaN")
        out = await self.queue._progress(
            keys=self._keys()[:3], args=[*self._held_args(), repr(max(0.0, float(fraction))), stage, chunk_blob]
        )
        self.lost = self.lost or int(out[0]) == 0
        self.cancel_requested = as_str(out[1]) == "1"
        recorded = float(as_str(out[2]) or 0)
        self.record.progress = recorded
        if stage:
            self.record.stage = stage
        return recorded

    def progress_callback(
        self, loop: asyncio.AbstractEventLoop | None = None, *, min_interval_s: float = 0.1
    ) -> Callable[..., None]:
        """A plain ``report(fraction, stage="")`` for engine code running in a worker thread.

        It schedules :meth:`progress` on ``loop`` (the running loop by default;
        call this from the loop), at most every ``min_interval_s`` unless the
        stage changes or the work is done, and raises :class:`JobCancelled` in
        the thread once a cancel has been seen, which stops the engine.
        """
        loop = loop or asyncio.get_running_loop()
        last_t, last_stage = 0.0, ""

        def report(fraction: float, stage: str = "") -> None:
            nonlocal last_t, last_stage
            now = time.monotonic()
            if now - last_t >= min_interval_s or stage != last_stage or fraction >= 1.0:
                last_t, last_stage = now, stage
                future = asyncio.run_coroutine_threadsafe(self.progress(fraction, stage), loop)
                future.add_done_callback(_log_failed_report)
            self.check_cancelled()

        return report

    async def heartbeat(self) -> bool:
        """Keep the claim alive (resets its idle time); False if another worker took the job."""
        deadline = self.record.deadline_at
        if deadline and time.time() >= deadline:
            await self.queue.cancel_at_deadline(self.id, self.kind)
        out = await self.queue._heartbeat(keys=self._keys()[:3], args=self._held_args())
        held = int(out[0]) == 1
        self.lost = self.lost or not held
        self.cancel_requested = as_str(out[1]) == "1"
        return held

    def check_cancelled(self) -> None:
        """Raise JobCancelled if a cancel was seen by the last heartbeat or progress call."""
        if self.cancel_requested:
            raise JobCancelled(self.id)

    def _observe(self, state: JobState) -> None:
        started = self.record.started_at
        metrics.observe_job(self.kind, state.name, max(0.0, time.time() - started) if started else None)

    async def complete(self, result_blobs: dict[str, str] | None = None, result: dict[str, Any] | None = None) -> bool:
        """Record the result; False (and nothing written) if the job was already finished.

        The outputs are registered to the job's owner first (``JobQueue.register_outputs``),
        so whoever sees the job SUCCEEDED may use them; if that fails, the error
        propagates and the job stays unfinished (the worker fails it for a retry).
        """
        if self.queue.register_outputs is not None and result_blobs and self.record.owner:
            await self.queue.register_outputs(self.record.owner, result_blobs)
        outcome = await self.queue._complete(
            keys=self._keys()[:3],
            args=[*self.queue._common_args(), json.dumps(result_blobs or {}), json.dumps(result or {}), self.entry],
        )
        self.finished = True
        if int(outcome) == 1:
            self._observe(JobState.SUCCEEDED)
            log.info("job %s succeeded", self.id)
            return True
        log.info("job %s was already finished; this result is dropped", self.id)
        return False

    async def fail(self, error: str, *, retryable: bool = True) -> JobState | None:
        """Give the job up: queued again for a retry, or DEAD at the retry limit (FAILED if not retryable).

        Returns the job's new state, or None if this worker no longer held it.
        """
        error = error[:MAX_ERROR_CHARS]
        outcome = int(
            await self.queue._fail(
                keys=self._keys(),
                args=[
                    *self.queue._common_args(),
                    self.attempt,
                    error,
                    "1" if retryable else "0",
                    self.queue.max_attempts,
                    repr(self.queue.retry_delay(self.attempt)),
                ],
            )
        )
        self.finished = True
        state = {1: JobState.QUEUED, 2: JobState.DEAD, 3: JobState.CANCELLED, 4: JobState.FAILED}.get(outcome)
        if state is not None and state.terminal:
            self._observe(state)
        log.info("job %s failed (%s): %s", self.id, state.name if state else "no longer held", error)
        return state

    async def mark_cancelled(self) -> bool:
        """Record that the job stopped because it was cancelled."""
        outcome = await self.queue._mark_cancelled(keys=self._keys()[:3], args=self.queue._common_args())
        self.finished = True
        if int(outcome) == 1:
            self._observe(JobState.CANCELLED)
            return True
        return False

    async def release(self) -> bool:
        """Put the job back in the queue without counting this attempt (worker shutting down)."""
        outcome = int(await self.queue._release(keys=self._keys()[:3], args=[*self.queue._common_args(), self.attempt]))
        self.finished = True
        if outcome == 3:
            self._observe(JobState.CANCELLED)
        return outcome == 1


def _log_failed_report(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("progress report failed: %s", future.exception())
