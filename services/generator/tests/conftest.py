"""A real generator gRPC server (tiny presets on the CPU) on real Redis and the S3 server."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile as sf
from grpc_health.v1 import health_pb2_grpc

from beatflow.common.blobstore import BlobStore
from beatflow.generator.config import GeneratorSettings
from beatflow.generator.server import GeneratorServer, create_server
from beatflow.v1 import generator_pb2, generator_pb2_grpc, jobs_pb2, jobs_pb2_grpc

TERMINAL = {
    jobs_pb2.JOB_STATE_SUCCEEDED,
    jobs_pb2.JOB_STATE_FAILED,
    jobs_pb2.JOB_STATE_CANCELLED,
    jobs_pb2.JOB_STATE_DEAD,
}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Any:
    """Tiny models are launch-bound: one intra-op thread avoids contention on a busy 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Client:
    server: GeneratorServer
    channel: grpc.aio.Channel
    generator: generator_pb2_grpc.GeneratorStub
    jobs: jobs_pb2_grpc.JobsStub
    health: health_pb2_grpc.HealthStub
    store: BlobStore

    async def submit(self, **fields: Any) -> jobs_pb2.Job:
        job: jobs_pb2.Job = await self.generator.SubmitGeneration(generator_pb2.GenerateRequest(**fields))
        return job

    async def wait_job(self, job_id: str, timeout_s: float = 60.0) -> tuple[jobs_pb2.Job, list[jobs_pb2.JobEvent]]:
        """Follow WatchJob to the terminal event; the final job and every event seen."""
        events: list[jobs_pb2.JobEvent] = []

        async def follow() -> None:
            async for ev in self.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
                events.append(ev)

        await asyncio.wait_for(follow(), timeout_s)
        job: jobs_pb2.Job = await self.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))
        return job, events

    def audio(self, key: str) -> tuple[np.ndarray, int]:
        """A result blob decoded: (samples, channels) float32 and its rate."""
        data, rate = sf.read(io.BytesIO(self.store.get_bytes(key)), dtype="float32", always_2d=True)
        return data, int(rate)

    def upload_wav(self, wav: np.ndarray, rate: int) -> str:
        buf = io.BytesIO()
        sf.write(buf, wav, rate, format="WAV", subtype="PCM_16")
        return self.store.put_bytes(buf.getvalue(), content_type="audio/wav")


def settings_for(redis_url: str, s3_settings: dict[str, Any], **extra: Any) -> GeneratorSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "redis_url": redis_url,
        "generator_model": "tiny",
        "generator_melody_model": "tiny-melody",
        "generator_device": "cpu",
        "generator_progress_interval_s": 0.2,
        "generator_torch_threads": 1,  # tiny matrices: one thread beats two busy cores
        "grace_period_s": 2.0,
        "log_json": False,
        **s3_settings,
    }
    values.update(extra)
    return GeneratorSettings(**values)


StartFn = Callable[..., Awaitable[Client]]


@pytest.fixture
async def start_generator(redis_url: str, s3_settings: dict[str, Any]) -> AsyncIterator[StartFn]:
    """Start a generator with extra settings; it is stopped after the test."""
    started: list[Client] = []

    async def start(**extra: Any) -> Client:
        settings = settings_for(redis_url, s3_settings, **extra)
        server, port = await create_server(settings)
        await server.start()
        await server.ready()
        await server.set_serving(True)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        assert server.app is not None
        client = Client(
            server=server,
            channel=channel,
            generator=generator_pb2_grpc.GeneratorStub(channel),
            jobs=jobs_pb2_grpc.JobsStub(channel),
            health=health_pb2_grpc.HealthStub(channel),
            store=server.app.store,
        )
        started.append(client)
        return client

    yield start
    for client in started:
        await client.channel.close()
        await client.server.stop(1.0)


@pytest.fixture
async def gen(start_generator: StartFn) -> Client:
    return await start_generator()
