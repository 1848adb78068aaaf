"""The job queue's own operations, against a real Redis: submit, claim, progress,
complete, fail, cancel, reclaim, positions, idempotency, history and retention."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from beatflow.common.errors import AlreadyExists, InvalidArgument, NotFound
from beatflow.common.jobs import GROUP, JobCancelled, JobEvent, JobQueue, JobRecord, JobState

KIND = "test"


@pytest.fixture
def queue(client: aioredis.Redis) -> JobQueue:
    return JobQueue(client, retry_limit=2, heartbeat_timeout_s=30.0, retention_s=3600.0)


@pytest.fixture
def fast_queue(client: aioredis.Redis) -> JobQueue:
    """A queue that declares a worker dead after 0.3 s without a heartbeat."""
    return JobQueue(client, retry_limit=2, heartbeat_timeout_s=0.3, retention_s=3600.0)


async def pending_count(client: aioredis.Redis, queue: JobQueue, kind: str = KIND) -> int:
    summary = await client.xpending(queue.queue_key(kind), GROUP)
    return int(summary["pending"])


async def test_submit_claim_complete(queue: JobQueue, client: aioredis.Redis) -> None:
    job = await queue.submit(KIND, {"prompt": "lofi drums", "seconds": 4}, owner="alice")
    assert job.state == JobState.QUEUED and not job.state.terminal
    assert job.request == {"prompt": "lofi drums", "seconds": 4}
    assert job.owner == "alice" and job.attempts == 0 and job.created_at > 0
    assert await queue.depth(KIND) == 1
    assert REGISTRY.get_sample_value("beatflow_job_queue_depth", {"kind": KIND}) == 1

    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    assert claimed.id == job.id and claimed.request == job.request
    running = await queue.get(job.id)
    assert running.state == JobState.RUNNING and running.attempts == 1 and running.started_at > 0
    assert await queue.depth(KIND) == 0 and await pending_count(client, queue) == 1

    assert await claimed.complete({"audio": "ab" * 32}, {"duration_s": 4.0}) is True
    done = await queue.get(job.id)
    assert done.state == JobState.SUCCEEDED and done.state.terminal
    assert done.result_blobs == {"audio": "ab" * 32} and done.result == {"duration_s": 4.0}
    assert done.progress == 1.0 and done.finished_at >= done.started_at
    # the queue entry is acknowledged and deleted
    assert await client.xlen(queue.queue_key(KIND)) == 0 and await pending_count(client, queue) == 0

    proto = done.to_proto()
    assert proto.id == job.id and proto.result_blobs["audio"] == "ab" * 32 and proto.attempts == 1


async def test_submit_rejects_bad_input_and_unknown_ids(queue: JobQueue) -> None:
    with pytest.raises(InvalidArgument):
        await queue.submit("no spaces", {})
    with pytest.raises(InvalidArgument):
        await queue.submit(KIND, {"x": object()})
    with pytest.raises(NotFound):
        await queue.get("0" * 32)
    with pytest.raises(NotFound):
        await queue.cancel("0" * 32)
    with pytest.raises(NotFound):
        async for _ in queue.events("0" * 32):
            pass


async def test_same_idempotency_key_returns_same_job(queue: JobQueue, client: aioredis.Redis) -> None:
    first = await queue.submit(KIND, {"n": 1}, owner="alice", idempotency_key="k1")
    again = await queue.submit(KIND, {"n": 1}, owner="alice", idempotency_key="k1")
    assert again.id == first.id
    other_key = await queue.submit(KIND, {"n": 1}, owner="alice", idempotency_key="k2")
    other_owner = await queue.submit(KIND, {"n": 1}, owner="bob", idempotency_key="k1")
    no_key = await queue.submit(KIND, {"n": 1}, owner="alice")
    assert len({first.id, other_key.id, other_owner.id, no_key.id}) == 4
    assert await client.xlen(queue.queue_key(KIND)) == 4


async def test_idempotency_key_with_another_request_is_a_conflict_naming_the_task(queue: JobQueue) -> None:
    first = await queue.submit(KIND, {"prompt": "lofi", "n": 1}, owner="alice", idempotency_key="k1")
    # the same request (keys in any order) is the same task
    assert (await queue.submit(KIND, {"n": 1, "prompt": "lofi"}, owner="alice", idempotency_key="k1")).id == first.id
    with pytest.raises(AlreadyExists, match=f"different request.*{first.id}"):
        await queue.submit(KIND, {"prompt": "techno", "n": 1}, owner="alice", idempotency_key="k1")
    # a caller that fills in defaults binds the key to what the client sent instead
    a = await queue.submit(KIND, {"seed": 7}, idempotency_key="k2", fingerprint="asked-for-x")
    b = await queue.submit(KIND, {"seed": 9}, idempotency_key="k2", fingerprint="asked-for-x")
    assert a.id == b.id and b.request == {"seed": 7}
    with pytest.raises(AlreadyExists):
        await queue.submit(KIND, {"seed": 7}, idempotency_key="k2", fingerprint="asked-for-y")
    # without a key nothing is compared: two submits, two jobs
    assert (await queue.submit(KIND, {"n": 1})).id != (await queue.submit(KIND, {"n": 1})).id


async def test_idempotency_keys_of_owners_with_colons_never_collide(queue: JobQueue) -> None:
    mine = await queue.submit(KIND, {"n": 1}, owner="a", idempotency_key="b:c")
    theirs = await queue.submit(KIND, {"n": 2}, owner="a:b", idempotency_key="c")
    assert theirs.id != mine.id and theirs.owner == "a:b" and theirs.request == {"n": 2}


async def test_concurrent_submits_with_one_key_make_one_job(queue: JobQueue, client: aioredis.Redis) -> None:
    outcomes = await asyncio.gather(
        *(queue.submit(KIND, {"i": i % 2}, idempotency_key="same") for i in range(25)), return_exceptions=True
    )
    records = [o for o in outcomes if isinstance(o, JobRecord)]
    conflicts = [o for o in outcomes if not isinstance(o, JobRecord)]
    assert all(isinstance(c, AlreadyExists) for c in conflicts)  # the other body's submits: refused
    assert len(conflicts) in (12, 13) and len(records) + len(conflicts) == 25
    assert len({r.id for r in records}) == 1
    assert await client.xlen(queue.queue_key(KIND)) == 1
    assert await queue.depth(KIND) == 1


async def test_idempotency_key_outlives_completion_until_retention(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {}, idempotency_key="once")
    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    await claimed.complete({}, {"ok": True})
    again = await queue.submit(KIND, {}, idempotency_key="once")
    assert again.id == job.id and again.state == JobState.SUCCEEDED


async def test_job_finished_twice_records_one_result(fast_queue: JobQueue, client: aioredis.Redis) -> None:
    job = await fast_queue.submit(KIND, {})
    [slow] = await fast_queue.claim(KIND, "slow-worker", block_ms=100)
    await asyncio.sleep(0.5)  # no heartbeat: the claim goes stale
    [fast] = await fast_queue.claim(KIND, "fast-worker", block_ms=100)
    assert fast.id == job.id and fast.attempt == 2
    assert await slow.heartbeat() is False and slow.lost

    assert await fast.complete({"audio": "f" * 64}, {"by": "fast"}) is True
    assert await slow.complete({"audio": "s" * 64}, {"by": "slow"}) is False
    assert await fast.complete({"audio": "x" * 64}, {"by": "again"}) is False

    done = await fast_queue.get(job.id)
    assert done.state == JobState.SUCCEEDED and done.result == {"by": "fast"}
    assert done.result_blobs == {"audio": "f" * 64}
    terminal = [e for e in await fast_queue.history(job.id) if e.terminal]
    assert len(terminal) == 1 and terminal[0].result_blobs == {"audio": "f" * 64}
    assert await client.xlen(fast_queue.queue_key(KIND)) == 0
    assert await pending_count(client, fast_queue) == 0


async def test_heartbeat_keeps_the_claim(fast_queue: JobQueue) -> None:
    await fast_queue.submit(KIND, {})
    [held] = await fast_queue.claim(KIND, "w1", block_ms=100)
    for _ in range(6):
        await asyncio.sleep(0.1)
        assert await held.heartbeat() is True
    assert await fast_queue.claim(KIND, "w2", block_ms=50) == []
    await asyncio.sleep(0.5)
    [taken] = await fast_queue.claim(KIND, "w2", block_ms=50)
    assert taken.id == held.id and taken.attempt == 2


async def test_stale_job_behind_many_live_ones_is_found(fast_queue: JobQueue) -> None:
    ids = [(await fast_queue.submit(KIND, {"i": i})).id for i in range(13)]
    held = await fast_queue.claim(KIND, "busy", count=13, block_ms=100)
    assert [j.id for j in held] == ids
    live, dead = held[:12], held[12]
    for _ in range(5):  # the first 12 keep heartbeating; the last one's worker is gone
        await asyncio.sleep(0.1)
        for job in live:
            assert await job.heartbeat()
    found = []
    for _ in range(5):  # each call scans a bounded slice of the pending list
        found += await fast_queue.claim(KIND, "rescuer", block_ms=10)
        if found:
            break
    assert [j.id for j in found] == [dead.id] and found[0].attempt == 2


async def test_job_whose_worker_keeps_dying_goes_dead(client: aioredis.Redis) -> None:
    q = JobQueue(client, retry_limit=1, heartbeat_timeout_s=0.2, retention_s=3600.0)
    job = await q.submit(KIND, {"crashes": "the worker"})
    for attempt in (1, 2):
        [claimed] = await q.claim(KIND, f"doomed-{attempt}", block_ms=100)
        assert claimed.attempt == attempt
        await asyncio.sleep(0.3)
    assert await q.claim(KIND, "survivor", block_ms=50) == []
    dead = await q.get(job.id)
    assert dead.state == JobState.DEAD and "stopped heartbeating" in dead.error
    assert [r.id for r in await q.dead_letters(KIND)] == [job.id]
    assert await pending_count(client, q) == 0


async def test_progress_is_monotone_and_every_event_updates_the_job(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    assert await claimed.progress(0.5, "half") == 0.5
    assert await claimed.progress(0.2, "late report") == 0.5
    record = await queue.get(job.id)
    assert record.progress == 0.5 and record.stage == "late report"
    assert await claimed.progress(0.75, chunk_blob="c" * 64) == 0.75
    assert await claimed.progress(3.0, "overshoot") == 1.0
    await claimed.complete({}, {})

    events = await queue.history(job.id)
    assert [e.state for e in events][:2] == [JobState.QUEUED, JobState.RUNNING]
    progress = [e.progress for e in events]
    assert progress == sorted(progress)
    assert any(e.chunk_blob == "c" * 64 for e in events)
    assert events[-1].state == JobState.SUCCEEDED and events[-1].progress == 1.0


async def test_progress_survives_a_retry(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    [first] = await queue.claim(KIND, "w1", block_ms=100)
    await first.progress(0.6)
    assert await first.fail("transient") == JobState.QUEUED
    [second] = await queue.claim(KIND, "w2", block_ms=100)
    assert second.attempt == 2
    assert await second.progress(0.1) == 0.6
    assert (await queue.get(job.id)).progress == 0.6


async def test_late_subscriber_sees_the_whole_history(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    for i in range(1, 4):
        await claimed.progress(i / 4, f"step {i}")
    await claimed.complete({"audio": "a" * 64}, {})

    events = [e async for e in queue.events(job.id)]  # ends by itself: the job is finished
    assert [e.state for e in events] == [JobState.QUEUED, JobState.RUNNING] + [JobState.RUNNING] * 3 + [
        JobState.SUCCEEDED
    ]
    assert [e.stage for e in events[2:5]] == ["step 1", "step 2", "step 3"]
    assert events[-1].result_blobs == {"audio": "a" * 64}
    assert all(isinstance(e, JobEvent) and e.job_id == job.id for e in events)
    # resuming after an event id replays only what came later
    rest = [e async for e in queue.events(job.id, after=events[3].event_id)]
    assert [e.event_id for e in rest] == [e.event_id for e in events[4:]]
    assert [e async for e in queue.events(job.id, after=events[-1].event_id, block_ms=50)] == []


async def test_live_subscriber_follows_until_terminal(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    seen: list[JobEvent] = []

    async def watch() -> None:
        async for event in queue.events(job.id, block_ms=200):
            seen.append(event)

    watcher = asyncio.create_task(watch())
    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    await claimed.progress(0.5, "half")
    await asyncio.sleep(0.05)
    await claimed.complete({}, {"ok": 1})
    await asyncio.wait_for(watcher, 5)
    assert [e.state for e in seen] == [JobState.QUEUED, JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED]
    assert (await queue.wait(job.id, timeout_s=5)).state == JobState.SUCCEEDED


async def test_queue_positions_and_depth(queue: JobQueue) -> None:
    jobs = [await queue.submit(KIND, {"i": i}) for i in range(4)]
    assert [await queue.queue_position(j.id) for j in jobs] == [0, 1, 2, 3]
    assert (await queue.get(jobs[3].id)).queue_position == 3
    assert await queue.depth(KIND) == 4

    [first] = await queue.claim(KIND, "w1", block_ms=100)
    assert first.id == jobs[0].id
    assert [await queue.queue_position(j.id) for j in jobs] == [0, 0, 1, 2]
    await queue.cancel(jobs[1].id)
    assert [await queue.queue_position(j.id) for j in jobs] == [0, 0, 0, 1]
    assert await queue.depth(KIND) == 2
    assert (await queue.get(jobs[3].id)).to_proto().queue_position == 1


async def test_claim_takes_batches(queue: JobQueue) -> None:
    ids = [(await queue.submit(KIND, {"i": i})).id for i in range(5)]
    batch = await queue.claim(KIND, "gpu", count=3, block_ms=100)
    assert [j.id for j in batch] == ids[:3]
    rest = await queue.claim(KIND, "gpu", count=3, block_ms=100)
    assert [j.id for j in rest] == ids[3:]
    assert await queue.claim(KIND, "gpu", count=3, block_ms=50) == []


async def test_failure_is_retried_at_once_then_dead_lettered(queue: JobQueue, client: aioredis.Redis) -> None:
    bad = await queue.submit(KIND, {"bad": True})
    good = await queue.submit(KIND, {"bad": False})
    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    assert claimed.id == bad.id
    states = [await claimed.fail("boom")]
    # the retry went behind the other job, which still flows
    [other] = await queue.claim(KIND, "w2", block_ms=100)  # no waiting for a heartbeat timeout
    assert other.id == good.id and await other.complete({}, {}) is True
    for attempt in range(2, queue.max_attempts + 1):
        [claimed] = await queue.claim(KIND, "w1", block_ms=100)
        assert claimed.id == bad.id and claimed.attempt == attempt
        states.append(await claimed.fail("boom"))
    assert states == [JobState.QUEUED] * (queue.max_attempts - 1) + [JobState.DEAD]
    dead = await queue.get(bad.id)
    assert dead.state == JobState.DEAD and dead.error == "boom" and dead.attempts == queue.max_attempts
    [letter] = await queue.dead_letters(KIND)
    assert letter.id == bad.id and letter.error == "boom"
    assert (await queue.get(good.id)).state == JobState.SUCCEEDED
    assert await client.xlen(queue.queue_key(KIND)) == 0


async def test_non_retryable_failure_fails_at_once(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    assert await claimed.fail("prompt is empty", retryable=False) == JobState.FAILED
    failed = await queue.get(job.id)
    assert failed.state == JobState.FAILED and failed.attempts == 1 and failed.error == "prompt is empty"
    assert await queue.dead_letters(KIND) == []


async def test_cancelled_queued_job_never_runs(queue: JobQueue, client: aioredis.Redis) -> None:
    job = await queue.submit(KIND, {})
    cancelled = await queue.cancel(job.id)
    assert cancelled.state == JobState.CANCELLED and cancelled.finished_at > 0
    assert await queue.claim(KIND, "w1", block_ms=50) == []
    assert [e.state for e in await queue.history(job.id)] == [JobState.QUEUED, JobState.CANCELLED]
    assert await client.xlen(queue.queue_key(KIND)) == 0
    # cancelling again changes nothing
    assert (await queue.cancel(job.id)).state == JobState.CANCELLED


async def test_cancel_of_a_delivered_but_unstarted_job_is_skipped(queue: JobQueue, client: aioredis.Redis) -> None:
    job = await queue.submit(KIND, {})
    # a worker read the entry but has not marked the job running yet
    await client.xreadgroup(GROUP, "w1", {queue.queue_key(KIND): ">"}, count=1)
    await queue.cancel(job.id)
    fast = JobQueue(client, heartbeat_timeout_s=0.05)
    await asyncio.sleep(0.1)
    assert await fast.claim(KIND, "w2", block_ms=50) == []
    assert await pending_count(client, queue) == 0
    assert (await queue.get(job.id)).state == JobState.CANCELLED


async def test_cancel_running_job_sets_a_flag_the_worker_sees(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    claimed.check_cancelled()  # nothing yet
    flagged = await queue.cancel(job.id)
    assert flagged.state == JobState.RUNNING and flagged.cancel_requested
    await claimed.heartbeat()
    with pytest.raises(JobCancelled):
        claimed.check_cancelled()
    assert await claimed.mark_cancelled() is True
    final = await queue.get(job.id)
    assert final.state == JobState.CANCELLED
    assert await claimed.complete({}, {}) is False


async def test_finished_jobs_expire_after_retention(client: aioredis.Redis) -> None:
    q = JobQueue(client, retention_s=120.0)
    job = await q.submit(KIND, {}, idempotency_key="ttl")
    idem_key = q.idempotency_key(KIND, "", "ttl")
    assert await client.pttl(q.job_key(job.id)) == -1  # live jobs never expire
    assert await client.pttl(q.events_key(job.id)) == -1
    [claimed] = await q.claim(KIND, "w1", block_ms=100)
    await claimed.complete({}, {})
    for key in (q.job_key(job.id), q.events_key(job.id), idem_key):
        assert 0 < await client.pttl(key) <= 120_000

    short = JobQueue(client, retention_s=0.2)
    gone = await short.submit(KIND, {})
    await short.cancel(gone.id)
    await asyncio.sleep(0.4)
    assert await short.find(gone.id) is None


async def test_metrics_count_finished_jobs(queue: JobQueue) -> None:
    def total(state: str) -> float:
        return REGISTRY.get_sample_value("beatflow_jobs_total", {"kind": "metered", "state": state}) or 0.0

    before = total("SUCCEEDED"), total("CANCELLED")
    await queue.submit("metered", {})
    cancelled = await queue.submit("metered", {})
    await queue.cancel(cancelled.id)
    [claimed] = await queue.claim("metered", "w1", block_ms=100)
    await claimed.complete({}, {})
    assert (total("SUCCEEDED"), total("CANCELLED")) == (before[0] + 1, before[1] + 1)


async def test_cancelled_job_whose_worker_died_ends_cancelled(fast_queue: JobQueue) -> None:
    job = await fast_queue.submit(KIND, {})
    await fast_queue.claim(KIND, "doomed", block_ms=100)
    assert (await fast_queue.cancel(job.id)).state == JobState.RUNNING  # flagged; nobody will see it
    await asyncio.sleep(0.5)
    assert await fast_queue.claim(KIND, "w2", block_ms=50) == []
    assert (await fast_queue.get(job.id)).state == JobState.CANCELLED


async def test_progress_callback_reports_from_a_thread_and_stops_on_cancel(queue: JobQueue) -> None:
    job = await queue.submit(KIND, {})
    [claimed] = await queue.claim(KIND, "w1", block_ms=100)
    report = claimed.progress_callback(min_interval_s=0.0)
    cancelled = asyncio.Event()
    loop = asyncio.get_running_loop()

    def engine() -> int:
        step = 0
        while True:  # a long blocking loop, as model inference is
            step += 1
            report(min(step / 1000, 0.99), f"step {step}")
            if step == 5:
                loop.call_soon_threadsafe(cancelled.set)
            time.sleep(0.01)

    async def cancel_then_heartbeat() -> None:
        await cancelled.wait()
        await queue.cancel(job.id)
        await claimed.heartbeat()

    canceller = asyncio.create_task(cancel_then_heartbeat())
    with pytest.raises(JobCancelled):
        await asyncio.to_thread(engine)
    await canceller
    await claimed.mark_cancelled()
    history = await queue.history(job.id)
    assert any(e.stage == "step 5" for e in history)
    assert history[-1].state == JobState.CANCELLED


async def test_queue_client_outlives_a_slow_blocking_read(redis_url: str) -> None:
    """redis-py's default 5 s read timeout would drop a reply that comes later (a
    busy worker's loop reads late); the queue's client waits for it."""
    from beatflow.common.jobs import connect_redis

    client = connect_redis(redis_url)
    try:
        assert await client.xread({"bf:test:nothing": "$"}, block=6000) in (None, [], {})
    finally:
        await client.aclose()


async def test_status_read_loads_its_script_again_after_a_flush(queue: JobQueue, client: aioredis.Redis) -> None:
    """The status read calls EVALSHA directly; a Redis that forgot the script (a restart) gets it again."""
    job = await queue.submit(KIND, {"n": 1}, owner="u1")
    await client.script_flush()
    record = await queue.get(job.id)
    assert (record.id, record.state, record.owner, record.queue_position) == (job.id, JobState.QUEUED, "u1", 0)
    assert (await client.script_exists(queue._status.sha)) == [True]
    assert await queue.find(job.id + "x") is None
