"""The generation worker on a real Redis queue with the engine decoder: same audio as generate()."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import torch

from beatflow.common.blobstore import LocalBlobStore
from beatflow.common.jobs import JobQueue, JobState
from beatflow.generator.decoders import Decoder, Sampling
from beatflow.generator.engine_decoder import EngineDecoder
from beatflow.generator.hf_generate import GenerateDecoder
from beatflow.generator.longform import WindowRunner
from beatflow.generator.model_loading import ModelSlot
from beatflow.generator.models import LoadedModel, load_model
from beatflow.generator.request import GenerationSpec, Limits, validate
from beatflow.generator.worker import KIND, GenerationWorker, WorkerConfig


async def _run_jobs(
    redis_url: str, store: LocalBlobStore, lm: LoadedModel, decoder: Decoder, specs: list[GenerationSpec]
) -> list[Any]:
    client = aioredis.Redis.from_url(redis_url)
    queue = JobQueue(client, prefix=f"bf-{decoder.name}")
    slot = ModelSlot("text", lm, decoder, WindowRunner(lm, decoder, 30.0, 10.0))
    worker = GenerationWorker(
        queue, store, {"text": slot}, WorkerConfig(max_batch=4, max_wait_ms=200), consumer=f"w-{decoder.name}"
    )
    limits = Limits()
    jobs = [await queue.submit(KIND, validate(spec, limits).to_dict()) for spec in specs]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        finals = [await asyncio.wait_for(queue.wait(j.id), 120) for j in jobs]
    finally:
        stop.set()
        await task
        await client.aclose()
    return finals


async def test_engine_worker_makes_the_audio_generate_makes(redis_url: str, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lm = load_model("tiny")
        store = LocalBlobStore(tmp_path)
        greedy = Sampling(greedy=True)
        specs = [
            GenerationSpec(prompt="lofi beat", duration_s=0.5, seed=1, sampling=greedy),
            GenerationSpec(prompt="techno", duration_s=1.2, seed=2, sampling=greedy, guidance_scale=2.0),
            GenerationSpec(prompt="ambient", duration_s=0.8, seed=3, sampling=Sampling(top_k=50)),
            GenerationSpec(prompt="ambient", duration_s=0.8, seed=3, sampling=Sampling(top_k=50)),
        ]
        reference = await _run_jobs(redis_url, store, lm, GenerateDecoder(lm), specs[:2])
        engine = EngineDecoder(lm, slots=4, window_s=30.0)
        try:
            got = await _run_jobs(redis_url, store, lm, engine, specs)
        finally:
            engine.close()
    finally:
        torch.set_num_threads(before)
    for job in [*reference, *got]:
        assert job.state == JobState.SUCCEEDED, job.error
    # greedy: byte-identical audio files (content-addressed keys) from both decoders
    assert [j.result_blobs["audio"] for j in got[:2]] == [j.result_blobs["audio"] for j in reference]
    # sampling: the same seed gives the same audio, and the jobs shared the running batch
    assert got[2].result_blobs["audio"] == got[3].result_blobs["audio"]
    assert got[2].result["audio_duration_s"] == 0.8
    assert max(j.result["batch_jobs"] for j in got) > 1
