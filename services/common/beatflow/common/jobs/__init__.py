"""Durable job queue on Redis Streams consumer groups.

Public API (import from ``beatflow.common.jobs``):

    JobState            enum mirroring beatflow.v1.JobState (QUEUED, RUNNING, SUCCEEDED,
                        FAILED, CANCELLED, DEAD); JobState.terminal (property)
    JobRecord           dataclass: id, kind, state, progress, stage, error, attempts,
                        owner, request (dict), result_blobs (dict[str,str]),
                        result (dict), created_at, started_at, finished_at,
                        queue_position; .to_proto() -> jobs_pb2.Job
    JobEvent            dataclass: event_id, job_id, state, progress, stage, error,
                        result_blobs, chunk_blob, timestamp; .to_proto()
    JobCancelled        exception raised inside a handler when its job was cancelled
    JobKind             StrEnum of job kinds (GENERATE, SEPARATE, ANALYZE): the queue names

    JobQueue(redis: redis.asyncio.Redis, *, prefix="bf", retry_limit=3,
             heartbeat_timeout_s=30.0, retention_s=7*86400, register_outputs=None)
        JobQueue.from_settings(settings)                  # CommonSettings redis_url, job_*;
                                                          # vcs_addr: an OutputRegistrar
                                                          # (:mod:`.outputs`) registers each
                                                          # finished job's outputs with vcs
        retry_limit: retries after the first attempt (a job runs at most
        retry_limit + 1 times, then it is DEAD and in the dead-letter stream)
        await submit(kind, request: dict, *, owner="", idempotency_key=None,
                     deadline_s=None, size_s=0.0, webhook_url="", webhook_events=())
                                                          # -> JobRecord (with position, ETA)
        await get(job_id) -> JobRecord                    # NotFound if unknown
        await find(job_id) -> JobRecord | None
        await cancel(job_id) -> JobRecord                 # queued: cancelled at once;
                                                          # running: flag the worker sees
        async for ev in events(job_id, after="0"):         # replay history then follow,
            ...                                           # ends after the terminal event
                                                          # (at once for a finished job)
        await history(job_id, after="0") -> list[JobEvent] # recorded events, no waiting
        await wait(job_id, timeout_s=None) -> JobRecord   # until terminal
        await queue_position(job_id) -> int               # O(log n): ZRANK of the waiting set
        await expire_deadlines() / promote_due(kind)      # run by start_job_maintenance
        await depth(kind) -> int                          # jobs waiting (not yet claimed)
        await dead_letters(kind) -> list[JobRecord]
        await claim(kind, consumer, *, count=1, block_ms=1000) -> list[ClaimedJob]
                                                          # reclaims stale jobs (XAUTOCLAIM)
                                                          # before reading new ones

    ClaimedJob  (a job held by this worker)
        .record: JobRecord; .request: dict; .id
        await progress(fraction, stage="", chunk_blob="")  # monotone; emits a JobEvent
                                                          # (also refreshes the claim)
        progress_callback(loop=None) -> report(fraction, stage="")
                                                          # for engine threads; raises
                                                          # JobCancelled there on cancel
        await heartbeat()                                 # keeps the claim alive
        cancel_requested: bool (refreshed by heartbeat()); check_cancelled() raises JobCancelled
        await complete(result_blobs: dict[str,str], result: dict) -> bool
                                                          # idempotent: False if it was
                                                          # already finished (one result);
                                                          # first runs queue.register_outputs
                                                          # (owner, result_blobs) when set
        await fail(error: str, *, retryable=True)         # retried until retry_limit,
                                                          # then DEAD + dead-letter stream
        await mark_cancelled()
        await release()                                   # back to the queue, attempt not
                                                          # counted (worker shutting down)
        lost: bool (another worker reclaimed the job); finished: bool
    run_worker(queue, kind, handler, *, consumer, concurrency=1, batch=1,
               max_wait_ms=0, max_jobs=None, heartbeat_s=5.0, stop: asyncio.Event,
               block_ms=1000, status: WorkerStatus | None = None) -> None
        handler(jobs: list[ClaimedJob]) -> awaitable; a batch is the jobs that
        arrive within max_wait_ms of the first (at most batch; max_jobs caps the
        jobs held by all running batches). The loop heartbeats the jobs while the
        handler runs, completes nothing itself (the handler calls complete/fail),
        and turns JobCancelled into mark_cancelled and any other exception into
        fail(str(exc)). It never ends on a backend error: claims are retried with
        backoff and jitter, and status says whether it runs and reaches Redis.
    settle(op, what, *, give_up_s=60) -> result of op()   # a job-state write retried
                                                          # while Redis is away
    WorkerStatus(name).problem(outage_s) -> str | None    # for the health check

    JobsServicer(queue)  implements beatflow.v1.Jobs (GetJob, WatchJob, CancelJob, webhook
                         secret / dead letters / redeliver); every service with jobs registers it.
    jobs_service(queue) -> grpcserver.Service for create_grpc_server([...]).
    start_job_maintenance(queue, kinds) -> async stop
                         deadline sweeper, retry promotion and the webhook delivery loop.
    WebhookStore         webhook deliveries, signing secrets, dead letters (:mod:`.webhooks`).

Redis layout and guarantees: see :mod:`beatflow.common.jobs.queue`.
"""

from beatflow.common.jobs.maintenance import start_job_maintenance
from beatflow.common.jobs.model import JobCancelled, JobEvent, JobKind, JobRecord, JobState
from beatflow.common.jobs.queue import GROUP, ClaimedJob, JobQueue, connect_redis
from beatflow.common.jobs.servicer import JobsServicer, jobs_service
from beatflow.common.jobs.webhooks import WebhookStore
from beatflow.common.jobs.worker import NON_RETRYABLE, Handler, WorkerStatus, run_worker, settle

__all__ = [
    "GROUP",
    "NON_RETRYABLE",
    "ClaimedJob",
    "Handler",
    "JobCancelled",
    "JobEvent",
    "JobKind",
    "JobQueue",
    "JobRecord",
    "JobState",
    "JobsServicer",
    "WebhookStore",
    "WorkerStatus",
    "connect_redis",
    "jobs_service",
    "run_worker",
    "settle",
    "start_job_maintenance",
]
