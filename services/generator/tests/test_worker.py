"""The batching worker on a real Redis queue: out-of-memory splitting and a worker that stays up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import torch

from beatflow.common.blobstore import LocalBlobStore
from beatflow.common.jobs import JobQueue, JobState
from beatflow.generator.decoders import DecodeRequest, DecodeResult
from beatflow.generator.hf_generate import GenerateDecoder
from beatflow.generator.longform import WindowRunner
from beatflow.generator.model_loading import ModelSlot
from beatflow.generator.models import load_model
from beatflow.generator.request import GenerationSpec, Limits, validate
from beatflow.generator.worker import KIND, GenerationWorker, WorkerConfig


class SmallMemoryDecoder(GenerateDecoder):
    """The real generate() decoder on a device that only fits ``budget`` frames at once (like a small GPU)."""

    def __init__(self, *args: Any, budget: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.calls: list[int] = []

    def decode(self, requests: Sequence[DecodeRequest], **kwargs: Any) -> list[DecodeResult]:
        self.calls.append(len(requests))
        if sum(r.new_frames for r in requests) > self.budget:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().decode(requests, **kwargs)


async def test_out_of_memory_splits_the_batch_and_fails_only_what_cannot_fit(redis_url: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    lm = load_model("tiny")
    decoder = SmallMemoryDecoder(lm, budget=60)
    slot = ModelSlot("text", lm, decoder, WindowRunner(lm, decoder, 30.0, 10.0))
    client = aioredis.Redis.from_url(redis_url)
    queue = JobQueue(client)
    worker = GenerationWorker(
        queue, LocalBlobStore(tmp_path), {"text": slot}, WorkerConfig(max_batch=4, max_wait_ms=500), consumer="w1"
    )
    limits = Limits()
    small = [
        await queue.submit(KIND, validate(GenerationSpec(prompt=f"a{i}", duration_s=0.5), limits).to_dict())
        for i in range(3)
    ]
    big = await queue.submit(KIND, validate(GenerationSpec(prompt="b", duration_s=2.0), limits).to_dict())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        finals = [await asyncio.wait_for(queue.wait(j.id), 60) for j in [*small, big]]
    finally:
        stop.set()
        await task
    for job in finals[:3]:
        assert job.state == JobState.SUCCEEDED, job.error
        assert job.result["batch_jobs"] < 4  # it ran in a smaller batch than it was claimed in
    assert finals[3].state == JobState.FAILED
    assert "out of GPU memory" in finals[3].error and "shorter duration" in finals[3].error
    assert decoder.calls[0] == 4 and min(decoder.calls) == 1
    # the worker stayed up: a later job still runs
    task = asyncio.create_task(worker.run(stop := asyncio.Event()))
    try:
        later = await queue.submit(KIND, validate(GenerationSpec(prompt="c", duration_s=0.5), limits).to_dict())
        done = await asyncio.wait_for(queue.wait(later.id), 60)
    finally:
        stop.set()
        await task
    assert done.state == JobState.SUCCEEDED and json.loads(json.dumps(done.result))["batch_jobs"] == 1
    await client.aclose()


async def test_worker_rides_out_a_redis_outage_mid_batch(tmp_path: Path) -> None:
    """Redis stops while a batch decodes, so storing its results (and failing them) cannot
    reach it: the worker keeps trying, never exits, and every job finishes once Redis is back."""
    from beatflow.common import localservers

    torch.set_num_threads(1)
    server = localservers.start_redis(tmp_path / "redis", persist=True)
    client = aioredis.Redis.from_url(server.url, socket_timeout=5, socket_connect_timeout=1)
    lm = load_model("tiny")
    decoder = GenerateDecoder(lm)
    slot = ModelSlot("text", lm, decoder, WindowRunner(lm, decoder, 30.0, 10.0))
    queue = JobQueue(client, heartbeat_timeout_s=30.0)
    worker = GenerationWorker(
        queue, LocalBlobStore(tmp_path / "blobs"), {"text": slot}, WorkerConfig(max_batch=2), consumer="w1"
    )
    limits = Limits()
    jobs = [
        await queue.submit(KIND, validate(GenerationSpec(prompt=f"p{i}", duration_s=1.0), limits).to_dict())
        for i in range(3)
    ]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        while not worker.held:  # noqa: ASYNC110 - the worker fills it
            await asyncio.sleep(0.01)
        server.stop()  # mid-batch: the decode ends while Redis is away
        await asyncio.sleep(3.0)
        assert not task.done(), task
        server = localservers.start_redis(tmp_path / "redis", port=server.port, persist=True)
        finals = [await asyncio.wait_for(queue.wait(j.id), 90) for j in jobs]
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await client.aclose()
        server.stop()
    assert [f.state for f in finals] == [JobState.SUCCEEDED] * 3, [f.error for f in finals]
    assert all(f.result_blobs["audio"] for f in finals)
