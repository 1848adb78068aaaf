"""A real separator gRPC server (tiny model) on real Redis and the S3 server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc

from beatflow.common.blobstore import S3BlobStore
from beatflow.separator.config import SeparatorSettings
from beatflow.separator.server import SeparatorApp, build_app
from beatflow.v1 import jobs_pb2, jobs_pb2_grpc, separator_pb2_grpc


@dataclass
class Client:
    app: SeparatorApp
    channel: grpc.aio.Channel
    separator: separator_pb2_grpc.SeparatorStub
    jobs: jobs_pb2_grpc.JobsStub
    health: health_pb2_grpc.HealthStub
    store: S3BlobStore

    async def wait_job(self, job_id: str, timeout_s: float = 60.0) -> tuple[jobs_pb2.Job, list[jobs_pb2.JobEvent]]:
        """Follow WatchJob to the terminal event; returns the final job and every event seen."""
        events: list[jobs_pb2.JobEvent] = []

        async def follow() -> None:
            async for ev in self.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
                events.append(ev)

        await asyncio.wait_for(follow(), timeout_s)
        return await self.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id)), events


def settings_for(redis_url: str, s3_settings: dict[str, Any], **extra: Any) -> SeparatorSettings:
    return SeparatorSettings(
        host="127.0.0.1",
        port=0,
        redis_url=redis_url,
        separator_model="tiny",
        separator_heartbeat_s=0.5,
        separator_claim_block_ms=200,
        grace_period_s=2.0,
        log_json=False,
        **s3_settings,
        **extra,
    )


@pytest.fixture
def separator_settings(redis_url: str, s3_settings: dict[str, Any]) -> SeparatorSettings:
    return settings_for(redis_url, s3_settings)


@pytest.fixture
async def client(separator_settings: SeparatorSettings, s3_store: S3BlobStore) -> AsyncIterator[Client]:
    app = await build_app(separator_settings)
    await app.grpc.start()
    await app.ready()
    await app.grpc.set_serving(True)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield Client(
            app,
            channel,
            separator_pb2_grpc.SeparatorStub(channel),
            jobs_pb2_grpc.JobsStub(channel),
            health_pb2_grpc.HealthStub(channel),
            s3_store,
        )
    finally:
        await channel.close()
        await app.grpc.stop(1.0)
