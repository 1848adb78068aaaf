"""The worker loop: claim jobs in batches, run the handler, heartbeat meanwhile, record failures.

The handler does the work and calls ``complete`` (or ``fail``) itself; the loop
only turns what escapes the handler into a job state. Handlers that do heavy
synchronous work (model inference) must run it off the event loop
(``asyncio.to_thread``), or heartbeats stop and the job is reclaimed by
another worker after the heartbeat timeout.

Batching: the loop waits (blocking up to ``block_ms``) for a first job, then
keeps claiming for at most ``max_wait_ms`` or until it holds ``batch`` jobs;
``max_jobs`` bounds the jobs held by all running handler calls together.

Faults: the loop never ends on a backend error. A failed claim is retried
with exponential backoff and jitter; a job-state write that fails because
Redis is away (:func:`settle`) is retried the same way, and if it still
cannot be written the job stays claimed and a live worker reclaims it after
the heartbeat timeout. :class:`WorkerStatus` tells the health check whether
the loop runs and since when it cannot reach the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
from beatflow.common.jobs.backoff import backoff_s
from beatflow.common.jobs.model import JobCancelled
from beatflow.common.jobs.queue import ClaimedJob, JobQueue
from beatflow.common.logging import bind
from beatflow.common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")
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

# Redis away, restarting or loading its data: worth trying again.
TRANSIENT: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


async def settle(op: Callable[[], Awaitable[T]], what: str, *, give_up_s: float = 60.0) -> T:
    """Run a job-state write (complete, fail, release...), retrying while Redis is away.

    Transient errors are retried with :func:`backoff_s` for up to ``give_up_s``;
    then (or for any other error) the error propagates. The writes are
    idempotent (a retry after a lost reply finds the job already finished),
    and a job whose outcome could not be written stays claimed until a live
    worker reclaims it, so nothing is lost either way.
    """
    deadline = time.monotonic() + give_up_s
    failures = 0
    while True:
        try:
            return await op()
        except TRANSIENT as exc:
            failures += 1
            delay = backoff_s(failures)
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s failed (%s: %s); retrying in %.2fs", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)


@dataclass
class WorkerStatus:
    """What a worker loop tells the health check (see :meth:`problem`)."""

    name: str
    started: bool = False
    running: bool = False
    stopped: bool = False  # ended because it was asked to
    failing_since: float | None = None  # monotonic time of the first failed claim in a row
    last_error: str = ""

    def claim_failed(self, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = f"{type(exc).__name__}: {exc}"

    def claim_ok(self) -> None:
        if self.failing_since is not None:
            log.info("%s worker reaches the queue again", self.name)
        self.failing_since = None

    def problem(self, outage_s: float) -> str | None:
        """Why the loop cannot do its work (None when it can): it ended without being
        asked to, or it has not reached the queue for ``outage_s`` seconds."""
        if self.started and not self.running and not self.stopped:
            return f"the {self.name} worker loop is not running"
        if self.failing_since is not None and time.monotonic() - self.failing_since >= outage_s:
            down = time.monotonic() - self.failing_since
            return f"the {self.name} worker cannot reach the job queue for {down:.0f}s ({self.last_error})"
        return None


async def run_worker(
    queue: JobQueue,
    kind: str,
    handler: Handler,
    *,
    consumer: str,
    concurrency: int = 1,
    batch: int = 1,
    max_wait_ms: int = 0,
    max_jobs: int | None = None,
    heartbeat_s: float = 5.0,
    stop: asyncio.Event,
    block_ms: int = 1000,
    status: WorkerStatus | None = None,
) -> None:
    """Run ``handler`` on batches of up to ``batch`` jobs of ``kind``, ``concurrency`` batches at a time.

    A batch is what arrives within ``max_wait_ms`` of its first job (0: what one
    claim returns); ``max_jobs`` caps the jobs held by all running batches.
    Returns once ``stop`` is set and the running handlers have finished. If the
    task running this loop is cancelled instead, the handlers are cancelled and
    their jobs put back in the queue without counting the attempt.
    """
    if concurrency < 1 or batch < 1 or (max_jobs is not None and max_jobs < 1):
        raise ValueError("concurrency, batch and max_jobs must be >= 1")
    status = status or WorkerStatus(kind)
    interval = min(heartbeat_s, queue.heartbeat_timeout_s / 3)
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    held = 0
    freed = asyncio.Event()
    last_depth = 0.0
    failures = 0

    def finished(task: asyncio.Task[None], n: int) -> None:
        nonlocal held
        running.discard(task)
        held -= n
        slots.release()
        freed.set()

    async def pause(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    status.started, status.running, status.stopped = True, True, False
    try:
        while not stop.is_set():
            await slots.acquire()
            freed.clear()
            room = batch if max_jobs is None else min(batch, max_jobs - held)
            if stop.is_set() or room <= 0:
                slots.release()
                if room <= 0 and not stop.is_set():  # every job slot taken: wait for a batch to end
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(freed.wait(), 1.0)
                continue
            try:
                jobs = await _claim_batch(queue, kind, consumer, room, block_ms, max_wait_ms, stop)
            except asyncio.CancelledError:
                slots.release()
                raise
            except Exception as exc:  # Redis away or restarting: back off and try again, never die
                slots.release()
                failures += 1
                status.claim_failed(exc)
                delay = backoff_s(failures)
                if isinstance(exc, TRANSIENT):
                    log.warning("claiming %s jobs failed (%s); retrying in %.2fs", kind, exc, delay)
                else:
                    log.exception("claiming %s jobs failed; retrying in %.2fs", kind, delay)
                await pause(delay)
                continue
            failures = 0
            status.claim_ok()
            if not jobs:
                slots.release()
            else:
                held += len(jobs)
                task = asyncio.create_task(_run_batch(jobs, handler, interval), name=f"job-{jobs[0].id}")
                running.add(task)
                task.add_done_callback(functools.partial(finished, n=len(jobs)))
            if time.monotonic() - last_depth >= interval:
                last_depth = time.monotonic()
                with contextlib.suppress(Exception):
                    await queue.depth(kind)
    except asyncio.CancelledError:
        if running:
            await cancel_and_wait(list(running), timeout_s=30.0)
        status.running, status.stopped = False, True
        raise
    except BaseException:
        status.running = False
        raise
    if running:
        await asyncio.gather(*running, return_exceptions=True)
    status.running, status.stopped = False, True


async def _claim_batch(
    queue: JobQueue, kind: str, consumer: str, room: int, block_ms: int, max_wait_ms: int, stop: asyncio.Event
) -> list[ClaimedJob]:
    """The first jobs (waiting up to ``block_ms``), then more for up to ``max_wait_ms``, at most ``room``."""
    jobs = await queue.claim(kind, consumer, count=room, block_ms=block_ms)
    if not jobs or max_wait_ms <= 0:
        return jobs
    deadline = time.monotonic() + max_wait_ms / 1000
    try:
        while len(jobs) < room and not stop.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            jobs += await queue.claim(kind, consumer, count=room - len(jobs), block_ms=max(1, left_ms))
    except asyncio.CancelledError:
        for job in jobs:  # claimed but never started: back to the queue
            with contextlib.suppress(Exception):
                await job.release()
        raise
    except TRANSIENT as exc:  # run what was claimed already
        log.warning("claiming more %s jobs failed (%s); going on with %d", kind, exc, len(jobs))
    return jobs


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
            await cancel_and_wait(beat)


async def _run_handler(jobs: list[ClaimedJob], handler: Handler) -> None:
    def unfinished() -> list[ClaimedJob]:
        return [j for j in jobs if not j.finished]

    try:
        await handler(jobs)
    except JobCancelled as exc:
        for job in unfinished():
            try:
                if job.cancel_requested or job.id == exc.job_id:
                    await settle(job.mark_cancelled, f"recording the cancel of job {job.id}")
                    log.info("job %s cancelled", job.id)
                else:  # a batch-mate of a cancelled job: run it again later, attempt not counted
                    await settle(job.release, f"releasing job {job.id}")
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
                state = await settle(
                    functools.partial(job.fail, message, retryable=retryable), f"recording the failure of job {job.id}"
                )
                log.info("job %s -> %s", job.id, state.name if state else "already finished")
            except Exception:
                log.exception("could not record the failure of job %s", job.id)
    else:
        for job in unfinished():
            log.error("handler returned without finishing job %s", job.id)
            with contextlib.suppress(Exception):
                await settle(
                    functools.partial(job.fail, "handler returned without finishing the job", retryable=False),
                    f"recording the failure of job {job.id}",
                )
