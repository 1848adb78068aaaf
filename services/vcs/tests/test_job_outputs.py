"""A finished job's outputs are the owner's blobs in vcs as the job completes, with no read of the task.

The worker's completion (``ClaimedJob.complete``) registers them through a real vcs
gRPC server, against a real Redis queue, PostgreSQL and blob store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text

from beatflow.common.blobstore import LocalBlobStore
from beatflow.common.errors import Unavailable
from beatflow.common.jobs import JobQueue, JobState
from beatflow.common.jobs.outputs import OutputRegistrar
from beatflow.common.localservers import free_port
from beatflow.common.settings import CommonSettings
from beatflow.v1 import vcs_pb2 as pb
from beatflow.v1 import vcs_pb2_grpc
from beatflow.vcs.config import VcsSettings
from beatflow.vcs.db import make_engine
from beatflow.vcs.server import create_server

KIND = "outputs-test"


@dataclass
class Vcs:
    addr: str
    stub: vcs_pb2_grpc.VcsStub
    database_url: str


@pytest.fixture
async def vcs(database_url: str, tmp_path: Path) -> AsyncIterator[Vcs]:
    settings = VcsSettings(database_url=database_url, port=0, metrics_port=None, blob_dir=tmp_path / "blobs")
    gs, port = await create_server(settings)
    await gs.start()
    await gs.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Vcs(f"127.0.0.1:{port}", vcs_pb2_grpc.VcsStub(channel), database_url)
    await gs.stop(0)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _can_read(vcs: Vcs, user: str, key: str) -> bool:
    return (await vcs.stub.CanReadBlob(pb.CanReadBlobRequest(actor=user, blob_key=key))).allowed


async def test_completing_a_job_registers_its_outputs_to_the_owner(
    vcs: Vcs, redis_client: aioredis.Redis, local_store: LocalBlobStore
) -> None:
    alice = await vcs.stub.CreateUser(pb.CreateUserRequest(username="alice", password_hash="h"))
    bob = await vcs.stub.CreateUser(pb.CreateUserRequest(username="bob", password_hash="h"))
    registrar = OutputRegistrar(vcs.addr, CommonSettings(), store=local_store)
    queue = JobQueue(redis_client, register_outputs=registrar)
    try:
        audio = local_store.put_bytes(b"RIFF" + b"\x01" * 96, "audio/wav")
        stem = local_store.put_bytes(b"fLaC" + b"\x02" * 50, "audio/flac")
        job = await queue.submit(KIND, {}, owner=alice.id)
        [claimed] = await queue.claim(KIND, "w1", block_ms=100)
        assert not await _can_read(vcs, alice.id, audio)
        assert await claimed.complete({"audio": audio, "drums": stem}, {}) is True
        assert (await queue.get(job.id)).state == JobState.SUCCEEDED
        # Nothing read the task: the completion itself made the outputs the owner's (and no one else's).
        assert await _can_read(vcs, alice.id, audio) and await _can_read(vcs, alice.id, stem)
        assert not await _can_read(vcs, bob.id, audio)
        engine = make_engine(vcs.database_url, pool_size=1, max_overflow=0)
        try:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text("SELECT key, uploader_id, content_type, size_bytes FROM blobs WHERE key = ANY(:k)"),
                        {"k": [audio, stem]},
                    )
                ).all()
        finally:
            await engine.dispose()
        assert {(r.key, r.uploader_id, r.content_type, r.size_bytes) for r in rows} == {
            (audio, alice.id, "audio/wav", 100),
            (stem, alice.id, "audio/flac", 54),
        }
        # A job of an owner vcs does not know completes, with nothing registered.
        await queue.submit(KIND, {}, owner="f" * 32)
        [stranger] = await queue.claim(KIND, "w1", block_ms=100)
        other = local_store.put_bytes(b"RIFF" + b"\x03" * 10, "audio/wav")
        assert await stranger.complete({"audio": other}, {}) is True
        assert not await _can_read(vcs, "f" * 32, other)
    finally:
        await registrar.close()


async def test_a_job_is_not_succeeded_while_its_outputs_cannot_be_registered(
    redis_client: aioredis.Redis, local_store: LocalBlobStore
) -> None:
    registrar = OutputRegistrar(f"127.0.0.1:{free_port()}", CommonSettings(), store=local_store, give_up_s=0.5)
    queue = JobQueue(redis_client, register_outputs=registrar)
    try:
        key = local_store.put_bytes(b"RIFF" + b"\x04" * 20, "audio/wav")
        job = await queue.submit(KIND, {}, owner="a" * 32)
        [claimed] = await queue.claim(KIND, "w1", block_ms=100)
        with pytest.raises(Unavailable):
            await claimed.complete({"audio": key}, {})
        assert (await queue.get(job.id)).state == JobState.RUNNING  # the worker fails it for a retry
        assert await claimed.fail("vcs unavailable") == JobState.QUEUED
    finally:
        await registrar.close()
