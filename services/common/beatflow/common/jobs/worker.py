"""The worker loop: claim jobs, run the handler, heartbeat meanwhile, record failures.

The handler does the work and calls ``complete`` (or ``fail``) itself; the loop
only turns what escapes the handler into a job state. Handlers that do heavy
synchronous work (model inference) must run it off the event loop
(``asyncio.to_thread``), or heartbeats stop and the job is reclaimed by
another worker after the heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from beatflow.common.errors import (
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from beatflow.common.jobs.model import JobCancelled
from beatflow.common.jobs.queue import ClaimedJob, JobQueue
from beatflow.common.logging import bind

log = logging.getLogger(__name__)

Handler = Callable[[list[ClaimedJob]], Awaitable[Any]]

# Errors that come out the same on every attempt: the job fails at once, without retries.
NON_RETRYABLE: tuple[type[Exception], ...] = (
    InvalidArgument,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    NotFound,
    DataLoss,
)


async def run_worker(
    queue: JobQueue,
    kind: str,
    handler: Handler,
    *,
    consumer: str,
    concurrency: int = 1,
    batch: int = 1,
    heartbeat_s: float = 5.0,
    stop: asyncio.Event,
    block_ms: int = 1000,
) -> None:
    """Run ``handler`` on batches of up to ``batch`` jobs of ``kind``, ``concurrency`` batches at a time.

    Returns once ``stop`` is set and the running handlers have finished. If the
    task running this loop is cancelled instead, the handlers are cancelled and
    their jobs put back in the queue without counting the attempt.
    """
    if concurrency < 1 or batch < 1:
        raise ValueError("concurrency and batch must be >= 1")
    interval = min(heartbeat_s, queue.heartbeat_timeout_s / 3)
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    last_depth = 0.0

    def done(task: asyncio.Task[None]) -> None:
        running.discard(task)
        slots.release()

    try:
        while not stop.is_set():
            await slots.acquire()
            if stop.is_set():
                slots.release()
                break
            try:
                jobs = await queue.claim(kind, consumer, count=batch, block_ms=block_ms)
            except asyncio.CancelledError:
                slots.release()
                raise
            except Exception as exc:  # Redis away or restarting: keep trying, never die silently
                slots.release()
                if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
                    log.warning("claiming %s jobs failed: %s; retrying", kind, exc)
                else:
                    log.exception("claiming %s jobs failed; retrying", kind)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            if not jobs:
                slots.release()
            else:
                task = asyncio.create_task(_run_batch(jobs, handler, interval), name=f"job-{jobs[0].id}")
                running.add(task)
                task.add_done_callback(done)
            if time.monotonic() - last_depth >= interval:
                last_depth = time.monotonic()
                with contextlib.suppress(Exception):
                    await queue.depth(kind)
    except asyncio.CancelledError:
        for task in list(running):
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        raise
    if running:
        await asyncio.gather(*running, return_exceptions=True)


async def _heartbeat(jobs: list[ClaimedJob], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        for job in jobs:
            if job.finished:
                continue
            try:
                held = await job.heartbeat()
            except Exception as exc:  # a missed beat is retried on the next tick
                log.warning("heartbeat for job %s failed: %s", job.id, exc)
                continue
            if not held:
                log.warning("job %s was taken over by another worker", job.id)


async def _run_batch(jobs: list[ClaimedJob], handler: Handler, interval: float) -> None:
    job_id = jobs[0].id if len(jobs) == 1 else ",".join(j.id for j in jobs)
    with bind(job_id=job_id):
        log.info("running %s job(s) (attempt %s)", jobs[0].kind, ",".join(str(j.attempt) for j in jobs))
        beat = asyncio.create_task(_heartbeat(jobs, interval))
        try:
            await _run_handler(jobs, handler)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat


async def _run_handler(jobs: list[ClaimedJob], handler: Handler) -> None:
    def unfinished() -> list[ClaimedJob]:
        return [j for j in jobs if not j.finished]

    try:
        await handler(jobs)
    except JobCancelled as exc:
        for job in unfinished():
            try:
                if job.cancel_requested or job.id == exc.job_id:
                    await job.mark_cancelled()
                    log.info("job %s cancelled", job.id)
                else:  # a batch-mate of a cancelled job: run it again later, attempt not counted
                    await job.release()
            except Exception:
                log.exception("could not record the cancel of job %s", job.id)
    except asyncio.CancelledError:
        for job in unfinished():
            with contextlib.suppress(Exception):
                await job.release()
        raise
    except Exception as exc:
        retryable = not isinstance(exc, NON_RETRYABLE)
        message = str(exc) or type(exc).__name__
        if retryable:
            log.exception("job handler failed: %s", message)
        else:
            log.warning("job failed (not retryable): %s", message)
        for job in unfinished():
            try:
                state = await job.fail(message, retryable=retryable)
                log.info("job %s -> %s", job.id, state.name if state else "already finished")
            except Exception:
                log.exception("could not record the failure of job %s", job.id)
    else:
        for job in unfinished():
            log.error("handler returned without finishing job %s", job.id)
            with contextlib.suppress(Exception):
                await job.fail("handler returned without finishing the job", retryable=False)
