"""The shared claim loop under faults: batch claiming, a Redis outage mid-batch (the loop and
its job-state writes ride it out), health checks that follow it, and bounded stops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.exceptions import ConnectionError as RedisConnectionError

from beatflow.common import localservers
from beatflow.common.errors import dependency_outage
from beatflow.common.grpcserver import DependencyProbe, create_grpc_server
from beatflow.common.jobs import ClaimedJob, JobQueue, JobState, WorkerStatus, run_worker, settle
from beatflow.common.jobs.worker import backoff_s
from beatflow.common.settings import CommonSettings

KIND = "test"


async def _until(predicate: object, timeout_s: float = 30.0, what: str = "condition") -> None:
    async def poll() -> None:
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 - state changed by other tasks
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_batch_collects_jobs_arriving_within_max_wait(client: aioredis.Redis) -> None:
    queue = JobQueue(client, heartbeat_timeout_s=5.0)
    batches: list[list[str]] = []

    async def handler(jobs: list[ClaimedJob]) -> None:
        batches.append([j.id for j in jobs])
        for job in jobs:
            await job.complete({}, {"batch": len(jobs)})

    first = await queue.submit(KIND, {"n": 0})
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(queue, KIND, handler, consumer="w", batch=4, max_wait_ms=1500, stop=stop, block_ms=100)
    )
    try:
        # the first job is claimed and the loop keeps claiming: three more join its batch
        while (await queue.get(first.id)).state != JobState.RUNNING:  # noqa: ASYNC110 - state in Redis
            await asyncio.sleep(0.02)
        rest = [await queue.submit(KIND, {"n": i}) for i in (1, 2, 3)]
        finals = [await queue.wait(j.id, 30) for j in [first, *rest]]
        # alone in the queue: a batch of one once max_wait_ms has passed
        later = await queue.submit(KIND, {"n": 4})
        assert (await queue.wait(later.id, 30)).result == {"batch": 1}
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert batches[0] == [first.id, *(j.id for j in rest)]
    assert all(f.state == JobState.SUCCEEDED and f.result == {"batch": 4} for f in finals)


async def test_max_jobs_bounds_what_running_batches_hold(client: aioredis.Redis) -> None:
    queue = JobQueue(client, heartbeat_timeout_s=5.0)
    held: list[int] = []
    now = 0
    release = asyncio.Event()

    async def handler(jobs: list[ClaimedJob]) -> None:
        nonlocal now
        now += len(jobs)
        held.append(now)
        await release.wait()
        for job in jobs:
            await job.complete({}, {})
        now -= len(jobs)

    jobs = [await queue.submit(KIND, {"n": i}) for i in range(7)]
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(queue, KIND, handler, consumer="w", concurrency=5, batch=2, max_jobs=3, stop=stop, block_ms=100)
    )
    try:
        await _until(lambda: now == 3, 10, "three held jobs")
        await asyncio.sleep(0.3)  # room for a wrong claim to show up
        assert now == 3 and await queue.depth(KIND) == 4
        release.set()
        finals = [await queue.wait(j.id, 30) for j in jobs]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert max(held) == 3
    assert all(f.state == JobState.SUCCEEDED for f in finals)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[localservers.LocalServer]:
    """A Redis of this test's own (persisted), that the test stops and starts again on the same data."""
    server = localservers.start_redis(tmp_path / "redis", persist=True)
    try:
        yield server
    finally:
        server.stop()


def _restart(server: localservers.LocalServer, data_dir: Path) -> localservers.LocalServer:
    return localservers.start_redis(data_dir, port=server.port, persist=True)


async def test_redis_outage_mid_batch_loses_no_job_and_the_loop_lives_on(
    own_redis: localservers.LocalServer, tmp_path: Path
) -> None:
    """Redis stops while a batch runs: its result writes (and the claims) wait and retry;
    after Redis returns on the same data every job finishes once, with no restart."""
    client = aioredis.Redis.from_url(own_redis.url, socket_timeout=5, socket_connect_timeout=1)
    queue = JobQueue(client, heartbeat_timeout_s=30.0)
    started = asyncio.Event()
    go_on = asyncio.Event()
    runs: list[str] = []

    async def handler(jobs: list[ClaimedJob]) -> None:
        runs.extend(j.id for j in jobs)
        started.set()
        await go_on.wait()
        for job in jobs:
            await settle(lambda job=job: job.complete({}, {"ok": True}), f"completing {job.id}")

    first = [await queue.submit(KIND, {"n": i}) for i in range(3)]
    status = WorkerStatus("test")
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(
            queue,
            KIND,
            handler,
            consumer="w",
            concurrency=2,
            batch=3,
            heartbeat_s=0.2,
            stop=stop,
            block_ms=100,
            status=status,
        )
    )
    server = own_redis
    try:
        await asyncio.wait_for(started.wait(), 30)
        server.stop()  # SIGTERM: Redis saves its data and exits
        go_on.set()  # the handler now tries to store its results with Redis away
        await _until(lambda: status.failing_since is not None, 30, "a failed claim")
        assert status.problem(outage_s=0.0) is not None and "cannot reach the job queue" in str(
            status.problem(outage_s=0.0)
        )
        await asyncio.sleep(1.0)
        assert not task.done()  # the loop is alive through the outage
        server = _restart(own_redis, tmp_path / "redis")
        await _until(lambda: status.failing_since is None, 30, "claims to work again")
        later = await queue.submit(KIND, {"n": 99})
        finals = [await queue.wait(j.id, 30) for j in [*first, later]]
    finally:
        stop.set()
        go_on.set()
        await asyncio.wait_for(task, 15)
        await client.aclose()
        server.stop()
    assert [f.state for f in finals] == [JobState.SUCCEEDED] * 4
    assert all(f.attempts == 1 for f in finals)  # no job ran twice
    assert sorted(runs) == sorted(j.id for j in [*first, later])
    assert status.problem(outage_s=0.0) is None


async def test_settle_retries_transient_errors_and_gives_up_on_time() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RedisConnectionError("Connection refused")
        return "written"

    assert await settle(flaky, "a write") == "written" and calls == 3

    async def down() -> None:
        raise RedisConnectionError("Connection refused")

    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(settle(down, "a write", give_up_s=0.3), 5)

    async def bug() -> None:
        raise ValueError("not transient")

    with pytest.raises(ValueError):
        await settle(bug, "a write")
    delays = [backoff_s(n) for n in range(1, 12)]
    assert all(0 < d <= 5.0 for d in delays) and delays[-1] >= 2.5


def test_backend_outage_names_the_store() -> None:
    assert dependency_outage(RedisConnectionError("refused")) == "the job queue (Redis)"
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert dependency_outage(wrapped) == "a backend"
    assert dependency_outage(ValueError("a bug")) is None


async def _health(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def test_health_turns_not_serving_during_an_outage_and_back(own_redis: localservers.LocalServer) -> None:
    client = aioredis.Redis.from_url(own_redis.url, socket_timeout=1, socket_connect_timeout=1)
    gs = create_grpc_server(CommonSettings(port=0), [])
    gs.check_interval_s = 0.1
    gs.checks.append(DependencyProbe("redis", client.ping, outage_s=0.3))
    await gs.start()
    server = own_redis
    try:
        await gs.set_serving(True)
        assert await _health(gs.port) == "SERVING"
        server.stop()
        for _ in range(200):
            if await _health(gs.port) == "NOT_SERVING":
                break
            await asyncio.sleep(0.05)
        assert await _health(gs.port) == "NOT_SERVING"
        server = localservers.start_redis(Path(str(own_redis.log_path)).parent, port=own_redis.port, persist=True)
        for _ in range(200):
            if await _health(gs.port) == "SERVING":
                break
            await asyncio.sleep(0.05)
        assert await _health(gs.port) == "SERVING"
    finally:
        await gs.stop(0)
        await client.aclose()
        server.stop()


async def test_a_stop_step_that_hangs_is_cut_off() -> None:
    gs = create_grpc_server(CommonSettings(port=0, stop_timeout_s=0.2), [])
    hung = asyncio.Event()
    after: list[str] = []

    async def hangs() -> None:
        hung.set()
        await asyncio.Event().wait()

    async def next_step() -> None:
        after.append("ran")

    gs.on_stop.extend([hangs, next_step])
    await gs.start()
    await asyncio.wait_for(gs.stop(0), 5)  # returns although a hook never ends
    assert hung.is_set() and after == ["ran"]
