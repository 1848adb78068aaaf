"""The worker loop and the Jobs gRPC service against a real Redis: a worker process
killed mid-job, failing jobs and the dead-letter stream, cancellation, batches,
shutdown, and GetJob/WatchJob/CancelJob through a real gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from beatflow.common.errors import InvalidArgument
from beatflow.common.grpcserver import create_grpc_server
from beatflow.common.jobs import GROUP, ClaimedJob, JobQueue, JobState, jobs_service, run_worker
from beatflow.common.logging import current_context
from beatflow.common.settings import CommonSettings
from beatflow.v1 import jobs_pb2, jobs_pb2_grpc

KIND = "test"

# A worker in its own process: takes the job, reports progress, then hangs
# (heartbeating) until the test kills it with SIGKILL.
DOOMED_WORKER = """
import asyncio, sys
import redis.asyncio as aioredis
from beatflow.common.jobs import JobQueue, run_worker

async def main(url):
    queue = JobQueue(aioredis.Redis.from_url(url), heartbeat_timeout_s=1.0)

    async def handler(jobs):
        for job in jobs:
            await job.progress(0.4, "half way, in the doomed worker")
        await asyncio.Event().wait()

    await run_worker(queue, "test", handler, consumer="doomed", heartbeat_s=0.2, stop=asyncio.Event())

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
def queue(client: aioredis.Redis) -> JobQueue:
    return JobQueue(client, retry_limit=2, heartbeat_timeout_s=1.0, retention_s=3600.0)


@contextlib.asynccontextmanager
async def worker(
    queue: JobQueue, handler: Callable[[list[ClaimedJob]], Awaitable[Any]], **kwargs: Any
) -> AsyncIterator[asyncio.Task[None]]:
    """Run a worker loop for the block, then stop it and wait for it to drain."""
    stop = asyncio.Event()
    kwargs.setdefault("consumer", "test-worker")
    kwargs.setdefault("heartbeat_s", 0.1)
    task = asyncio.create_task(run_worker(queue, KIND, handler, stop=stop, block_ms=100, **kwargs))
    try:
        yield task
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, 10)


async def wait_until(queue: JobQueue, job_id: str, predicate: Callable[[Any], bool]) -> None:
    async def follow() -> None:
        async with contextlib.aclosing(queue.events(job_id, block_ms=100)) as events:
            async for event in events:
                if predicate(event):
                    return

    await asyncio.wait_for(follow(), 30)


async def test_worker_process_killed_mid_job_is_reclaimed_with_one_result(
    queue: JobQueue, client: aioredis.Redis, redis_url: str
) -> None:
    job = await queue.submit(KIND, {"prompt": "survives a crash"})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", DOOMED_WORKER, redis_url)
    try:
        await wait_until(queue, job.id, lambda e: e.progress >= 0.4)
        running = await queue.get(job.id)
        assert running.state == JobState.RUNNING and running.attempts == 1
        os.kill(proc.pid, signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    seen: list[ClaimedJob] = []

    async def finish(jobs: list[ClaimedJob]) -> None:
        for claimed in jobs:
            seen.append(claimed)
            await claimed.progress(0.9, "finishing in the survivor")
            await claimed.complete({"audio": "e" * 64}, {"by": "survivor", "attempt": claimed.attempt})

    async with worker(queue, finish, consumer="survivor"):
        done = await queue.wait(job.id, timeout_s=30)

    assert [c.id for c in seen] == [job.id]
    assert done.state == JobState.SUCCEEDED and done.attempts == 2
    assert done.result == {"by": "survivor", "attempt": 2} and done.result_blobs == {"audio": "e" * 64}
    history = await queue.history(job.id)
    assert [e.state for e in history].count(JobState.SUCCEEDED) == 1
    assert sum(1 for e in history if e.terminal) == 1
    progress = [e.progress for e in history]
    assert progress == sorted(progress)
    assert await client.xlen(queue.queue_key(KIND)) == 0
    assert (await client.xpending(queue.queue_key(KIND), GROUP))["pending"] == 0


async def test_always_failing_job_is_dead_lettered_while_others_flow(queue: JobQueue) -> None:
    poison = await queue.submit(KIND, {"poison": True})
    good = [await queue.submit(KIND, {"poison": False, "i": i}) for i in range(6)]
    runs: dict[str, int] = {}

    async def handler(jobs: list[ClaimedJob]) -> None:
        [job] = jobs
        runs[job.id] = runs.get(job.id, 0) + 1
        if job.request["poison"]:
            raise RuntimeError("decoder exploded")
        await job.complete({}, {"i": job.request["i"]})

    async with worker(queue, handler, concurrency=2):
        for record in good:
            assert (await queue.wait(record.id, timeout_s=20)).state == JobState.SUCCEEDED
        dead = await queue.wait(poison.id, timeout_s=20)

    assert dead.state == JobState.DEAD and dead.error == "decoder exploded"
    assert dead.attempts == queue.max_attempts == runs[poison.id]
    assert [r.id for r in await queue.dead_letters(KIND)] == [poison.id]
    assert all(runs[r.id] == 1 for r in good)


async def test_invalid_argument_is_not_retried(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})

    async def handler(jobs: list[ClaimedJob]) -> None:
        raise InvalidArgument("bpm must be positive")

    async with worker(queue, handler):
        failed = await queue.wait(job.id, timeout_s=20)
    assert failed.state == JobState.FAILED and failed.attempts == 1 and failed.error == "bpm must be positive"
    assert await queue.dead_letters(KIND) == []


async def test_cancelled_running_job_stops_and_reports_cancelled(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    steps: list[int] = []
    stopped = asyncio.Event()

    async def handler(jobs: list[ClaimedJob]) -> None:
        [claimed] = jobs
        try:
            for i in range(10_000):
                await claimed.progress(i / 10_000, f"step {i}")
                claimed.check_cancelled()
                steps.append(i)
                await asyncio.sleep(0.01)
            await claimed.complete({}, {})
        finally:
            stopped.set()

    async with worker(queue, handler):
        await wait_until(queue, job.id, lambda e: e.stage == "step 3")
        flagged = await queue.cancel(job.id)
        assert flagged.cancel_requested
        final = await queue.wait(job.id, timeout_s=20)
        await asyncio.wait_for(stopped.wait(), 5)

    assert final.state == JobState.CANCELLED
    assert len(steps) < 10_000
    history = await queue.history(job.id)
    assert history[-1].state == JobState.CANCELLED
    assert any(e.stage == "cancelling" for e in history)


async def test_cancelled_queued_job_is_never_handed_to_the_worker(queue: JobQueue) -> None:
    doomed = await queue.submit(KIND, {"name": "doomed"})
    kept = await queue.submit(KIND, {"name": "kept"})
    await queue.cancel(doomed.id)
    handled: list[str] = []

    async def handler(jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            handled.append(job.request["name"])
            await job.complete({}, {})

    async with worker(queue, handler):
        await queue.wait(kept.id, timeout_s=20)
    assert handled == ["kept"]
    assert (await queue.get(doomed.id)).state == JobState.CANCELLED


async def test_batches_and_job_id_on_log_context(queue: JobQueue) -> None:
    ids = [(await queue.submit(KIND, {"i": i})).id for i in range(7)]
    batches: list[list[str]] = []
    contexts: list[dict[str, Any]] = []

    async def handler(jobs: list[ClaimedJob]) -> None:
        batches.append([j.id for j in jobs])
        contexts.append(current_context())
        for job in jobs:
            await job.complete({}, {})

    async with worker(queue, handler, batch=3):
        for job_id in ids:
            await queue.wait(job_id, timeout_s=20)
    assert sorted(i for b in batches for i in b) == sorted(ids)
    assert len(batches[0]) == 3 and all(len(b) <= 3 for b in batches)
    assert contexts[0]["job_id"] == ",".join(batches[0])


async def test_handler_that_forgets_to_finish_fails_the_job(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})

    async def handler(jobs: list[ClaimedJob]) -> None:
        return None

    async with worker(queue, handler):
        failed = await queue.wait(job.id, timeout_s=20)
    assert failed.state == JobState.FAILED and "without finishing" in failed.error


async def test_stopping_drains_and_cancelling_releases(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    started = asyncio.Event()

    async def hang(jobs: list[ClaimedJob]) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run_worker(queue, KIND, hang, consumer="w", stop=asyncio.Event(), block_ms=100))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    released = await queue.get(job.id)
    assert released.state == JobState.QUEUED and released.attempts == 0  # back in line, attempt not counted

    async def finish(jobs: list[ClaimedJob]) -> None:
        await asyncio.sleep(0.2)
        await jobs[0].complete({}, {"drained": True})

    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(queue, KIND, finish, consumer="w", stop=stop, block_ms=100))
    await wait_until(queue, job.id, lambda e: e.state == JobState.RUNNING)
    stop.set()  # the running job still finishes before the loop returns
    await asyncio.wait_for(task, 10)
    assert (await queue.get(job.id)).result == {"drained": True}


async def test_jobs_service_over_grpc(queue: JobQueue) -> None:
    server = create_grpc_server(CommonSettings(port=0), [jobs_service(queue)])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = jobs_pb2_grpc.JobsStub(channel)
            job = await queue.submit(KIND, {"prompt": "rain"}, owner="alice")
            behind = await queue.submit(KIND, {"prompt": "wind"})

            got = await stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.id))
            assert got.id == job.id and got.state == jobs_pb2.JOB_STATE_QUEUED and got.owner == "alice"
            assert '"rain"' in got.request_json
            assert (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=behind.id))).queue_position == 1

            watch = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id))
            [claimed] = await queue.claim(KIND, "w1", block_ms=100)
            await claimed.progress(0.5, "half")
            await claimed.complete({"audio": "d" * 64}, {"seconds": 2})
            events = [e async for e in watch]
            assert [e.state for e in events] == [
                jobs_pb2.JOB_STATE_QUEUED,
                jobs_pb2.JOB_STATE_RUNNING,
                jobs_pb2.JOB_STATE_RUNNING,
                jobs_pb2.JOB_STATE_SUCCEEDED,
            ]
            assert events[-1].result_blobs["audio"] == "d" * 64 and events[2].progress == 0.5
            resume = jobs_pb2.WatchJobRequest(job_id=job.id, after_event_id=events[1].event_id)
            resumed = [e async for e in stub.WatchJob(resume)]
            assert [e.event_id for e in resumed] == [e.event_id for e in events[2:]]

            cancelled = await stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=behind.id))
            assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED

            for call in (
                stub.GetJob(jobs_pb2.GetJobRequest(job_id="f" * 32)),
                stub.CancelJob(jobs_pb2.CancelJobRequest(job_id="f" * 32)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id="f" * 32)):
                    pass
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetJob(jobs_pb2.GetJobRequest(job_id=""))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id, after_event_id="nope")):
                    pass
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(0)
