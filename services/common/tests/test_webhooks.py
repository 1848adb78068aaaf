"""Webhooks against a real Redis and a real HTTP receiver on loopback (allowed by the
operator setting): signatures, retries, restarts, refused targets, dead letters."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from beatflow.common.errors import InvalidArgument
from beatflow.common.jobs import JobQueue, JobState, WebhookStore
from beatflow.common.jobs.webhooks import check_target, run_delivery_loop

KIND = "hooked"
OWNER = "user-1"


class Receiver:
    """An HTTP server that records every POST and fails the first ``fail_first`` of them."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    failed = sum(1 for r in receiver.requests if r[2] >= 300)
                    status = 500 if failed < receiver.fail_first else 204
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for h, b, status in self.requests if status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def queue(client: aioredis.Redis) -> JobQueue:
    return JobQueue(client, retry_limit=1, heartbeat_timeout_s=3.0, webhook_allow_private=True)


def store_for(client: aioredis.Redis, **kw: Any) -> WebhookStore:
    return WebhookStore(client, allow_private=True, backoff_s=0.05, max_delay_s=0.2, **kw)


class Loop:
    """A running delivery loop (as a service runs it), stoppable like a process stop."""

    def __init__(self, store: WebhookStore) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_delivery_loop(store, self.stop, poll_s=0.05, timeout_s=5.0))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


async def until(predicate: Any, timeout_s: float = 15.0) -> None:
    async def poll() -> None:
        while not await predicate():  # noqa: ASYNC110 (the state lives in Redis: polled)
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout_s)


async def run_job_to_success(queue: JobQueue, job_id: str) -> None:
    [claimed] = await queue.claim(KIND, "w1", block_ms=500)
    assert claimed.id == job_id
    await claimed.progress(0.5, "halfway")
    await claimed.complete({"audio": "ab" * 32}, {"duration_s": 4.0})


async def test_deliveries_are_signed_with_the_owners_secret(
    queue: JobQueue, client: aioredis.Redis, receiver: Receiver
) -> None:
    store = store_for(client)
    job = await queue.submit(KIND, {}, owner=OWNER, webhook_url=receiver.url)
    assert job.webhook_url == receiver.url and job.webhook_events == ["started", "completed", "failed", "cancelled"]
    assert job.to_proto().webhook_url == receiver.url
    loop = Loop(store)
    try:
        await run_job_to_success(queue, job.id)
        await until(lambda: _count(receiver, 2))
    finally:
        await loop.close()
    secret = await store.secret(OWNER)
    assert secret.startswith("whsec_")
    payloads = []
    for headers, body in receiver.accepted():
        payloads.append(Webhook(secret).verify(body, headers))  # the library's own verifier
        with pytest.raises(WebhookVerificationError):
            Webhook(await WebhookStore(client).secret("someone-else")).verify(body, headers)
    assert [p["type"] for p in payloads] == ["task.started", "task.completed"]  # no progress: not asked for
    done = payloads[1]["data"]
    assert done["task_id"] == job.id and done["status"] == "succeeded" and done["result_blobs"] == {"audio": "ab" * 32}
    ids = [h["webhook-id"] for h, _b in receiver.accepted()]
    assert len(set(ids)) == 2 and all(i.startswith(f"evt_{job.id}_") for i in ids)
    assert ids[1] == done["event_id"]

    # rotation: new deliveries are signed with the new secret only
    rotated = await store.secret(OWNER, rotate=True)
    assert rotated != secret and await store.secret(OWNER) == rotated
    job2 = await queue.submit(KIND, {}, owner=OWNER, webhook_url=receiver.url, webhook_events=["cancelled"])
    await queue.cancel(job2.id)
    loop = Loop(store)
    try:
        await until(lambda: _count(receiver, 3))
    finally:
        await loop.close()
    headers, body = receiver.accepted()[2]
    assert Webhook(rotated).verify(body, headers)["type"] == "task.cancelled"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.accepted()) >= n


async def test_receiver_failing_three_times_gets_the_event_once(
    queue: JobQueue, client: aioredis.Redis, receiver: Receiver
) -> None:
    receiver.fail_first = 3
    store = store_for(client)
    job = await queue.submit(KIND, {}, owner=OWNER, webhook_url=receiver.url, webhook_events=["completed"])
    loop = Loop(store)
    try:
        await run_job_to_success(queue, job.id)
        await until(lambda: _count(receiver, 1))
        [delivery] = await store.for_job(job.id)
        await until(lambda: _delivered(store, delivery.event_id))
    finally:
        await loop.close()
    statuses = [status for _h, _b, status in receiver.requests]
    assert statuses == [500, 500, 500, 204]
    assert len({h["webhook-id"] for h, _b, _s in receiver.requests}) == 1  # one event id on every attempt
    [(headers, body)] = receiver.accepted()
    assert json.loads(body)["type"] == "task.completed" and headers["webhook-id"] == delivery.event_id
    final = await store.get(delivery.event_id)
    assert final is not None and final.status == "delivered" and final.attempts == 4
    assert await client.zcard(store.due_key()) == 0


async def _delivered(store: WebhookStore, event_id: str) -> bool:
    d = await store.get(event_id)
    return d is not None and d.status == "delivered"


async def test_a_restart_between_attempts_loses_nothing(
    queue: JobQueue, client: aioredis.Redis, receiver: Receiver, redis_url: str
) -> None:
    receiver.fail_first = 1
    store = WebhookStore(client, allow_private=True, backoff_s=1.0, max_delay_s=1.0)
    job = await queue.submit(KIND, {}, owner=OWNER, webhook_url=receiver.url, webhook_events=["completed"])
    await run_job_to_success(queue, job.id)
    [delivery] = await store.for_job(job.id)
    loop = Loop(store)
    try:
        await until(lambda: _attempts(store, delivery.event_id, 1))
    finally:
        await loop.close()  # the service stops after the failed attempt
    assert receiver.accepted() == []

    # a new process: its own connection, store and loop
    fresh = aioredis.Redis.from_url(redis_url)
    try:
        loop = Loop(WebhookStore(fresh, allow_private=True, backoff_s=1.0, max_delay_s=1.0))
        try:
            await until(lambda: _count(receiver, 1))
            await until(lambda: _delivered(store, delivery.event_id))
        finally:
            await loop.close()
    finally:
        await fresh.aclose()
    assert [s for _h, _b, s in receiver.requests] == [500, 204]
    assert {h["webhook-id"] for h, _b, _s in receiver.requests} == {delivery.event_id}


async def _attempts(store: WebhookStore, event_id: str, n: int) -> bool:
    d = await store.get(event_id)
    return d is not None and d.attempts >= n


async def test_private_targets_are_refused_at_submit(client: aioredis.Redis) -> None:
    strict = JobQueue(client)
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
        "not a url",
    ):
        with pytest.raises(InvalidArgument):
            await strict.submit(KIND, {}, owner=OWNER, webhook_url=url)
    with pytest.raises(InvalidArgument):
        await strict.submit(KIND, {}, webhook_url="", webhook_events=["completed"])
    with pytest.raises(InvalidArgument):
        await JobQueue(client, webhook_allow_private=True).submit(
            KIND, {}, webhook_url="http://127.0.0.1/", webhook_events=["finished"]
        )
    assert await client.exists(strict.queue_key(KIND)) == 0 or await strict.depth(KIND) == 0
    await check_target("http://127.0.0.1:1/hook", allow_private=True)  # the operator setting


async def test_delivery_refuses_a_private_target_when_not_allowed(
    queue: JobQueue, client: aioredis.Redis, receiver: Receiver
) -> None:
    # queued while allowed; the operator then turns the setting off: the address is checked on every attempt
    job = await queue.submit(KIND, {}, owner=OWNER, webhook_url=receiver.url, webhook_events=["cancelled"])
    await queue.cancel(job.id)
    strict = WebhookStore(client, allow_private=False, backoff_s=0.05, max_delay_s=0.1, max_age_s=0.0)
    loop = Loop(strict)
    try:
        await until(lambda: _dead(strict))
    finally:
        await loop.close()
    assert receiver.requests == []
    [dead] = await strict.dead_letters(OWNER)
    assert "private" in dead.last_error


async def test_delivery_connects_to_the_address_it_checked(
    queue: JobQueue, client: aioredis.Redis, receiver: Receiver
) -> None:
    # The host name exists only in the store's resolver (``.test`` never resolves in DNS): the delivery
    # reaching the receiver proves the connection went to the checked address, not to a second lookup
    # that a rebinding DNS server could answer differently. Host header keeps the URL's host.
    port = receiver.server.server_address[1]
    url = f"http://hooks.beatflow.test:{port}/hook"
    lookups: list[str] = []

    async def resolver(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    store = WebhookStore(client, allow_private=True, backoff_s=0.05, max_delay_s=0.2, resolver=resolver)
    job = await queue.submit(KIND, {}, owner=OWNER, webhook_url=url, webhook_events=["cancelled"])
    await queue.cancel(job.id)
    loop = Loop(store)
    try:
        await until(lambda: _accepted(receiver))
    finally:
        await loop.close()
    [(headers, _body)] = receiver.accepted()
    assert headers["host"] == f"hooks.beatflow.test:{port}"
    assert lookups == ["hooks.beatflow.test"]


async def test_one_jobs_due_events_arrive_in_the_order_they_happened(
    queue: JobQueue, client: aioredis.Redis, receiver: Receiver
) -> None:
    # every event is due before the loop starts, so they are claimed in one batch
    events = ["started", "progress", "completed"]
    job = await queue.submit(KIND, {}, owner=OWNER, webhook_url=receiver.url, webhook_events=events)
    await run_job_to_success(queue, job.id)
    loop = Loop(store_for(client))
    try:
        await until(lambda: _count(receiver, 3))
    finally:
        await loop.close()
    assert [json.loads(body)["type"] for _h, body in receiver.accepted()] == [f"task.{e}" for e in events]


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.accepted()) >= n


async def _accepted(receiver: Receiver) -> bool:
    return bool(receiver.accepted())


async def _dead(store: WebhookStore) -> bool:
    return bool(await store.dead_letters(OWNER))


async def test_dead_letter_list_and_redeliver(queue: JobQueue, client: aioredis.Redis, receiver: Receiver) -> None:
    receiver.fail_first = 1
    store = store_for(client, max_age_s=0.0)  # the retry window is over after the first failure
    job = await queue.submit(KIND, {}, owner=OWNER, webhook_url=receiver.url, webhook_events=["failed"])
    [claimed] = await queue.claim(KIND, "w1", block_ms=500)
    await claimed.fail("bad input", retryable=False)
    loop = Loop(store)
    try:
        await until(lambda: _dead(store))
        [dead] = await store.dead_letters(OWNER)
        assert dead.status == "dead" and dead.attempts == 1 and dead.type == "task.failed" and dead.job_id == job.id
        assert dead.last_error == "HTTP 500" and await store.dead_letters("another-user") == []
        with pytest.raises(Exception, match="no dead webhook"):
            await store.redeliver("another-user", dead.event_id)
        again = await store.redeliver(OWNER, dead.event_id)
        assert again.status == "pending" and again.event_id == dead.event_id
        await until(lambda: _delivered(store, dead.event_id))
    finally:
        await loop.close()
    [(headers, body)] = receiver.accepted()
    assert headers["webhook-id"] == dead.event_id
    assert Webhook(await store.secret(OWNER)).verify(body, headers)["data"]["status"] == "failed"
    assert await store.dead_letters(OWNER) == []


async def test_progress_events_are_throttled(queue: JobQueue, client: aioredis.Redis, receiver: Receiver) -> None:
    job = await queue.submit(KIND, {}, owner=OWNER, webhook_url=receiver.url, webhook_events=["progress"])
    [claimed] = await queue.claim(KIND, "w1", block_ms=500)
    for i in range(20):
        await claimed.progress(i / 20)
    await claimed.complete({}, {})
    deliveries = await WebhookStore(client).for_job(job.id)
    assert len(deliveries) == 1 and deliveries[0].type == "task.progress"
    assert (await queue.get(job.id)).state == JobState.SUCCEEDED
