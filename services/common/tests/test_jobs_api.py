"""What integrators rely on, against a real Redis: deadlines, retry backoff, queue
positions (exact under concurrency) and ETAs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from beatflow.common.errors import InvalidArgument
from beatflow.common.jobs import GROUP, ClaimedJob, JobCancelled, JobQueue, JobState, run_worker, start_job_maintenance
from beatflow.common.jobs.model import decode_mapping

KIND = "api"


@pytest.fixture
def queue(client: aioredis.Redis) -> JobQueue:
    return JobQueue(client, retry_limit=2, heartbeat_timeout_s=3.0, retention_s=3600.0)


async def wait_state(queue: JobQueue, job_id: str, timeout_s: float = 15.0) -> JobState:
    return (await queue.wait(job_id, timeout_s)).state


# -- deadlines ----------------------------------------------------------------------------


async def test_queued_job_is_cancelled_at_its_deadline(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {"n": 1}, deadline_s=0.3)
    other = await queue.submit(KIND, {"n": 2})
    assert job.deadline_at == pytest.approx(time.time() + 0.3, abs=2.0)
    assert job.to_proto().deadline_at == job.deadline_at
    stop = start_job_maintenance(queue, [KIND], every_s=0.05)
    try:
        assert await wait_state(queue, job.id) == JobState.CANCELLED
    finally:
        await stop()
    done = await queue.get(job.id)
    assert done.cancel_reason == "deadline" and done.to_proto().cancel_reason == "deadline"
    assert "deadline" in done.stage
    # it left the line: the job behind it moved up, and nobody will be handed the cancelled one
    assert (await queue.get(other.id)).queue_position == 0
    assert await queue.depth(KIND) == 1
    [claimed] = await queue.claim(KIND, "w1", block_ms=200)
    assert claimed.id == other.id


async def test_running_job_is_cancelled_at_its_deadline(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {"n": 1}, deadline_s=1.0)
    seen: list[str] = []

    async def handler(jobs: list[ClaimedJob]) -> None:
        [claimed] = jobs
        seen.append("started")
        for i in range(400):  # would take 20 s: far past the deadline
            await claimed.progress(i / 400)
            claimed.check_cancelled()
            await asyncio.sleep(0.05)
        await claimed.complete({}, {})

    stop_worker = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(queue, KIND, handler, consumer="w1", heartbeat_s=0.2, stop=stop_worker, block_ms=100)
    )
    stop = start_job_maintenance(queue, [KIND], every_s=0.1)
    try:
        assert await wait_state(queue, job.id) == JobState.CANCELLED
    finally:
        await stop()
        stop_worker.set()
        await asyncio.wait_for(worker, 10)
    done = await queue.get(job.id)
    assert seen == ["started"] and done.cancel_reason == "deadline" and done.progress < 1.0
    assert done.finished_at >= done.deadline_at


async def test_user_cancel_has_reason_user_and_bad_deadlines_are_refused(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    assert (await queue.cancel(job.id)).cancel_reason == "user"
    for bad in (0.0, -1.0, float("nan"), 400 * 86400.0):
        with pytest.raises(InvalidArgument):
            await queue.submit(KIND, {}, deadline_s=bad)


async def test_deadline_checked_by_a_worker_heartbeat_without_the_sweeper(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {}, deadline_s=0.5)
    [claimed] = await queue.claim(KIND, "w1", block_ms=200)
    await asyncio.sleep(max(0.0, job.deadline_at - time.time()) + 0.05)
    assert await claimed.heartbeat() is False  # no longer held: the job ended at its deadline
    with pytest.raises(JobCancelled):
        claimed.check_cancelled()
    done = await queue.get(job.id)
    assert done.state == JobState.CANCELLED and done.cancel_reason == "deadline"
    assert await claimed.complete({"audio": "x"}, {}) is False  # a late result is dropped


# -- retries with backoff -----------------------------------------------------------------


def test_retry_delay_grows_exponentially_with_jitter(client: aioredis.Redis) -> None:
    q = JobQueue(client, retry_backoff_s=2.0, retry_backoff_max_s=30.0)
    for attempt, step in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 30.0), (9, 30.0)]:
        delays = {q.retry_delay(attempt) for _ in range(20)}
        assert all(step / 2 <= d <= step for d in delays), (attempt, delays)
        assert len(delays) > 1  # jittered
    assert JobQueue(client).retry_delay(1) == 0.0


async def test_failed_attempt_is_retried_after_its_backoff(client: aioredis.Redis) -> None:
    queue = JobQueue(client, retry_limit=2, heartbeat_timeout_s=3.0, retry_backoff_s=2.0)
    job = await queue.submit(KIND, {})
    [first] = await queue.claim(KIND, "w1", block_ms=200)
    assert await first.fail("transient") == JobState.QUEUED
    waiting = await queue.get(job.id)
    assert waiting.state == JobState.QUEUED and waiting.attempts == 1 and waiting.max_attempts == 3
    assert 1.0 <= waiting.retry_delay_s <= 2.0
    assert waiting.retry_at == pytest.approx(time.time() + waiting.retry_delay_s, abs=1.0)
    assert "retry 1 of 2 in" in waiting.stage and waiting.error == "transient"
    proto = waiting.to_proto()
    assert proto.retry_at == waiting.retry_at and proto.retry_delay_s == waiting.retry_delay_s
    assert proto.attempts == 1 and proto.max_attempts == 3
    # not at once: nothing to claim during the backoff
    assert await queue.claim(KIND, "w1", block_ms=100) == []
    await asyncio.sleep(max(0.0, waiting.retry_at - time.time()) + 0.05)
    [second] = await queue.claim(KIND, "w1", block_ms=1000)
    assert second.id == job.id and second.attempt == 2
    running = await queue.get(job.id)
    assert running.state == JobState.RUNNING and running.retry_at == 0.0
    events = [e.stage for e in await queue.history(job.id)]
    assert any(s.startswith("retry 1 of 2 in") for s in events) and any("queued for retry" in s for s in events)


async def test_cancel_during_backoff(client: aioredis.Redis) -> None:
    queue = JobQueue(client, retry_limit=2, heartbeat_timeout_s=3.0, retry_backoff_s=30.0)
    job = await queue.submit(KIND, {})
    [first] = await queue.claim(KIND, "w1", block_ms=200)
    await first.fail("transient")
    assert (await queue.cancel(job.id)).state == JobState.CANCELLED
    assert await client.zcard(queue.delayed_key(KIND)) == 0
    assert await queue.promote_due(KIND) == 0


# -- queue position -----------------------------------------------------------------------


async def snapshot(queue: JobQueue, ids: list[str]) -> tuple[list[tuple[int, int, str]], list[str]]:
    """(position, enqueue sequence, state) of every job, and the whole waiting set in order, read in
    one MULTI/EXEC (the set also holds jobs whose submit reply the test has not seen yet)."""
    pipe = queue.redis.pipeline(transaction=True)
    for job_id in ids:
        await queue._status(keys=[queue.job_key(job_id)], args=[GROUP], client=pipe)
    pipe.zrange(queue.queue_key(KIND) + ":waiting", 0, -1)
    *rows, waiting = await pipe.execute()
    out = []
    for row in rows:
        h = decode_mapping(row[6:])
        out.append((int(row[0]), int(h.get("seq") or 0), h["state"]))
    return out, [w.decode() if isinstance(w, bytes) else w for w in waiting]


async def test_position_exact_under_concurrent_submits_and_claims(queue: JobQueue) -> None:
    ids: list[str] = []
    claimed_seqs: list[list[int]] = [[] for _ in range(4)]
    submitted = asyncio.Event()
    checks = 0

    async def submitter(n: int) -> None:
        for i in range(n):
            ids.append((await queue.submit(KIND, {"i": i})).id)

    async def worker(w: int) -> None:
        while True:
            jobs = await queue.claim(KIND, f"w{w}", block_ms=50)
            if not jobs and submitted.is_set():
                return
            for job in jobs:
                claimed_seqs[w].append(int(await queue.redis.hget(queue.job_key(job.id), "seq")))
                await job.complete({}, {})

    async def checker() -> None:
        nonlocal checks
        while not (submitted.is_set() and all(s == "SUCCEEDED" for _p, _q, s in (await snapshot(queue, ids))[0])):
            known = list(ids)
            rows, waiting = await snapshot(queue, known)
            queued = sorted(
                (seq, pos, job_id)
                for (pos, seq, state), job_id in zip(rows, known, strict=True)
                if state == "QUEUED" and pos >= 0
            )
            # every waiting job's position is exactly its place among all waiting jobs, in queue order
            assert [pos for _seq, pos, job_id in queued] == [waiting.index(job_id) for _s, _p, job_id in queued]
            assert [pos for _seq, pos, _j in queued] == sorted(pos for _seq, pos, _j in queued)
            assert all(pos == -1 for pos, _seq, state in rows if state != "QUEUED")
            checks += 1
            await asyncio.sleep(0)

    async def submit_all() -> None:
        await asyncio.gather(*(submitter(50) for _ in range(4)))
        submitted.set()

    await asyncio.wait_for(asyncio.gather(submit_all(), checker(), *(worker(w) for w in range(4))), 60)
    assert len(ids) == 200 and checks > 5
    # each worker got its jobs in queue order; together, every job exactly once
    assert all(seqs == sorted(seqs) for seqs in claimed_seqs)
    assert sorted(s for seqs in claimed_seqs for s in seqs) == sorted(
        seq for _p, seq, _s in (await snapshot(queue, ids))[0]
    )

    # the public figures, with no worker around: positions as submitted, then moving up
    later = [await queue.submit(KIND, {"later": i}) for i in range(10)]
    assert [j.queue_position for j in later] == list(range(10))
    assert [(await queue.get(j.id)).queue_position for j in later] == list(range(10))
    await queue.claim(KIND, "w9", count=3, block_ms=100)
    await queue.cancel(later[5].id)
    assert [await queue.queue_position(j.id) for j in later] == [0, 0, 0, 0, 1, 0, 2, 3, 4, 5]
    events = [e async for e in _first_events(queue, later[9].id)]
    assert events[0].queue_position == 5 and events[0].to_proto().queue_position == 5


async def _first_events(queue: JobQueue, job_id: str) -> AsyncIterator:  # type: ignore[type-arg]
    async for event in queue.events(job_id, block_ms=50):
        yield event
        return


# -- ETA ----------------------------------------------------------------------------------


async def test_eta_tracks_the_real_wait_with_a_steady_worker(queue: JobQueue) -> None:
    fresh = await queue.submit(KIND, {}, size_s=1.0)
    assert fresh.eta_s < 0 and "no finished" in fresh.eta_basis  # nothing measured yet
    await queue.cancel(fresh.id)

    async def handler(jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            await asyncio.sleep(0.1 * job.record.size_s)  # a steady 0.1 s per second of audio
            await job.complete({}, {})

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(queue, KIND, handler, consumer="w1", stop=stop, block_ms=100))
    try:
        for _ in range(4):  # warm up: the throughput is measured on finished jobs
            await queue.wait((await queue.submit(KIND, {}, size_s=2.0)).id, 10)
        jobs = [await queue.submit(KIND, {}, size_s=2.0) for _ in range(7)]
        last = jobs[-1]
        assert last.eta_s > 0 and "ahead" in last.eta_basis and last.to_proto().eta_s == last.eta_s
        mid = await queue.get(jobs[3].id)
        done = await queue.wait(last.id, 20)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    real_wait = done.finished_at - last.created_at
    assert abs(last.eta_s - real_wait) <= 0.5 * real_wait, (last.eta_s, real_wait, last.eta_basis)
    assert 0 <= mid.eta_s <= last.eta_s
    assert (await queue.get(last.id)).eta_s == 0.0
