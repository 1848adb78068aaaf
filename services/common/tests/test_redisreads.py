"""The pipelined read connection on a real Redis: answers matched to callers, errors, restarts, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from beatflow.common import localservers
from beatflow.common.jobs import JobQueue
from beatflow.common.redisreads import PipelinedReads, supports

DEADLINE_S = 20  # every wait below: a hang fails the test instead of stalling the suite


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[localservers.LocalServer]:
    """A Redis of this test's own (stopped and restarted by some tests)."""
    server = localservers.start_redis(tmp_path / "redis", persist=False)
    try:
        yield server
    finally:
        server.stop()


def test_supported_urls() -> None:
    assert supports("redis://127.0.0.1:6379/0")
    assert supports("redis://:secret@redis:6379")
    assert not supports("rediss://redis:6380/0")  # TLS: redis-py's
    assert not supports("unix:///run/redis.sock")
    assert not supports("redis://redis:6379/0?socket_timeout=3")
    with pytest.raises(ValueError):
        PipelinedReads("rediss://redis:6380/0")


async def test_concurrent_commands_get_their_own_replies(own_redis: localservers.LocalServer) -> None:
    setup = aioredis.Redis.from_url(own_redis.url)
    reads = PipelinedReads(own_redis.url)
    try:
        await setup.mset({f"k{i}": f"v{i}" for i in range(300)})
        await setup.rpush("a-list", "x")
        async with asyncio.timeout(DEADLINE_S):
            # 300 callers at once on one connection (the first ones also share its opening)
            replies = await asyncio.gather(*(reads.execute("GET", f"k{i}") for i in range(300)))
            assert replies == [f"v{i}".encode() for i in range(300)]
            # an error reply fails its own caller only
            results = await asyncio.gather(
                reads.execute("GET", "k1"),
                reads.execute("GET", "a-list"),  # WRONGTYPE
                reads.execute("GET", "k2"),
                return_exceptions=True,
            )
            assert results[0] == b"v1" and results[2] == b"v2"
            assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
            assert await reads.execute("GET", "missing") is None
            assert await reads.execute("HGETALL", "missing") == []
            # a cancelled caller's reply is read and dropped: the next caller gets its own
            cancelled = asyncio.ensure_future(reads.execute("GET", "k3"))
            await asyncio.sleep(0)
            cancelled.cancel()
            assert await reads.execute("GET", "k4") == b"v4"
    finally:
        await reads.aclose()
        await setup.aclose()


async def test_reconnects_after_a_redis_restart(tmp_path: Path) -> None:
    port = localservers.free_port()
    server = localservers.start_redis(tmp_path / "redis", port=port, persist=False)
    reads = PipelinedReads(server.url, connect_timeout=2, timeout=2)
    try:
        async with asyncio.timeout(DEADLINE_S):
            await reads.execute("SET", "k", "before")
            assert await reads.execute("GET", "k") == b"before"
            server.stop()
            # Redis is gone: a connection error, at once (no hang, no wait for the timeout)
            with pytest.raises(RedisConnectionError):
                await reads.execute("GET", "k")
            with pytest.raises(RedisConnectionError):
                await reads.execute("GET", "k")
            server = localservers.start_redis(tmp_path / "redis", port=port, persist=False)
            await reads.execute("SET", "k", "after")  # a fresh connection to the new server
            assert await reads.execute("GET", "k") == b"after"
    finally:
        await reads.aclose()
        server.stop()


async def test_a_silent_server_is_a_timeout_and_the_connection_is_dropped() -> None:
    """A server that accepts and never answers: the command times out, the commands behind it fail too."""
    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reads = PipelinedReads(f"redis://127.0.0.1:{port}/0", connect_timeout=1, timeout=0.3)
    try:
        async with asyncio.timeout(DEADLINE_S):
            first = asyncio.ensure_future(reads.execute("GET", "a"))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(reads.execute("GET", "b"))
            results = await asyncio.gather(first, second, return_exceptions=True)
            assert isinstance(results[0], RedisTimeoutError), results
            assert isinstance(results[1], RedisTimeoutError | RedisConnectionError), results
            # the next command opens a new connection (and times out on it as well)
            with pytest.raises(RedisTimeoutError):
                await reads.execute("GET", "c")
            assert connections == 2
    finally:
        await reads.aclose()
        server.close()
        await server.wait_closed()


async def test_no_listener_is_a_connection_error() -> None:
    reads = PipelinedReads(f"redis://127.0.0.1:{localservers.free_port()}/0", connect_timeout=2, timeout=2)
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(RedisConnectionError):
            await reads.execute("GET", "k")


async def test_password_and_database_from_the_url(own_redis: localservers.LocalServer) -> None:
    admin = aioredis.Redis.from_url(own_redis.url)
    try:
        await admin.select(3)  # (this client's connection only)
        await admin.set("where", "db3")
        await admin.config_set("requirepass", "s3cret-for-test")
        reads = PipelinedReads(f"redis://:s3cret-for-test@127.0.0.1:{own_redis.port}/3")
        try:
            async with asyncio.timeout(DEADLINE_S):
                assert await reads.execute("GET", "where") == b"db3"
        finally:
            await reads.aclose()
        wrong = PipelinedReads(f"redis://:wrong@127.0.0.1:{own_redis.port}/3")
        try:
            async with asyncio.timeout(DEADLINE_S):
                for _ in range(2):  # each command tries to authenticate again, on a new connection
                    with pytest.raises(ResponseError):
                        await wrong.execute("GET", "where")
        finally:
            await wrong.aclose()
    finally:
        await admin.execute_command("AUTH", "s3cret-for-test")
        await admin.config_set("requirepass", "")
        await admin.aclose()


async def test_job_store_status_reads_over_it(own_redis: localservers.LocalServer) -> None:
    """``JobQueue.find`` through the pipelined connection: the same record, and NOSCRIPT loads the script."""
    client = aioredis.Redis.from_url(own_redis.url)
    reads = PipelinedReads(own_redis.url)
    plain = JobQueue(client)
    piped = JobQueue(client, reads=reads)
    try:
        async with asyncio.timeout(DEADLINE_S):
            job = await plain.submit("generate", {"prompt": "p"}, owner="u1")
            await client.script_flush()
            with pytest.raises(NoScriptError):
                await reads.execute("EVALSHA", piped._status.sha, 1, piped.job_key(job.id), "workers")
            found = await piped.find(job.id)  # NOSCRIPT, then the script object loads it
            assert found is not None and found == await plain.find(job.id)
            assert await piped.find("no-such-job") is None
    finally:
        await reads.aclose()
        await client.aclose()
