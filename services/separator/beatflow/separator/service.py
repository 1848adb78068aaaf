"""The separator's use cases: submit and run separation and analysis jobs, analyse inline.

Protobuf stays in the servicer; torch work runs in threads so the event loop
keeps heartbeating jobs and answering calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beatflow.common.blobstore import BlobStore
from beatflow.common.errors import InvalidArgument, NotFound
from beatflow.common.jobs import ClaimedJob, JobCancelled, JobKind, JobQueue, JobRecord
from beatflow.separator import analysis, audio_stream, audiodiff, models
from beatflow.separator.config import SeparatorSettings
from beatflow.separator.separation import (
    SeparationOptions,
    check_options,
    segment_length_s,
    segment_plan,
    separate,
)

log = logging.getLogger(__name__)

SEPARATE = JobKind.SEPARATE
ANALYZE = JobKind.ANALYZE
DIFF = JobKind.DIFF
MAX_DIFF_PAIRS = 32
DIFF_CACHE_TTL_S = 30 * 86400
DECODE_SHARE = 0.05  # progress fraction for decoding/resampling
UPLOAD_SHARE = 0.05  # and for uploading the stems


class WorkerShutdown(Exception):
    """The process is stopping: abandon the job so another replica runs it again."""


@dataclass
class AudioCheck:
    key: str
    size: int
    header: audio_stream.HeaderInfo


class SeparatorService:
    def __init__(self, settings: SeparatorSettings, queue: JobQueue, blobs: BlobStore, registry: models.ModelRegistry):
        self.settings = settings
        self.queue = queue
        self.blobs = blobs
        self.registry = registry
        self.shutdown = threading.Event()
        self._inline = asyncio.Semaphore(max(1, settings.separator_analysis_concurrency))

    # -- submit-time checks ---------------------------------------------------------

    async def check_audio_blob(self, key: str, max_bytes: int) -> AudioCheck:
        """Sniff the blob's header: InvalidArgument for missing, empty, non-audio, truncated or too long."""
        if not key:
            raise InvalidArgument("audio_blob is required")
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise InvalidArgument("audio_blob must be a blob key (64 lowercase hex characters)")
        try:
            info = await asyncio.to_thread(self.blobs.stat, key)
        except NotFound:
            raise InvalidArgument(f"audio blob {key} does not exist") from None
        if info.size > max_bytes:
            raise InvalidArgument(f"audio is {info.size} bytes, over the limit of {max_bytes} bytes")

        def read(start: int, end: int) -> bytes:
            return self.blobs.read_range(key, start, min(end, info.size - 1)) if start < info.size else b""

        header = await asyncio.to_thread(audio_stream.sniff_header, read, info.size)
        duration = header.duration_s
        if duration is not None and duration > self.settings.separator_max_duration_s:
            raise InvalidArgument(
                f"audio is {duration:.0f} s long, over the limit of {self.settings.separator_max_duration_s:.0f} s"
            )
        return AudioCheck(key, info.size, header)

    def _check_model_options(self, opts: SeparationOptions) -> None:
        name = self.registry.resolve_name(opts.model)
        if not models.known_model(name, self.settings.separator_model_dir):
            raise InvalidArgument(f"unknown model {name!r}; known: {sorted([*models.PRETRAINED, *models.PRESETS])}")
        loaded = self.registry.loaded().get(name)
        sources = loaded.sources if loaded else models.PRETRAINED.get(name) or models.PRESETS.get(name)
        if sources:
            check_options(opts, sources)
        if loaded is not None:
            segment_length_s(opts, loaded)
        elif opts.segment_s is not None and not 0.1 <= opts.segment_s <= 30.0:
            raise InvalidArgument(f"segment_s must be between 0.1 and 30 s, not {opts.segment_s}")

    async def submit_separation(
        self,
        audio_blob: str,
        opts: SeparationOptions,
        *,
        owner: str = "",
        idempotency_key: str = "",
        options: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Check and queue a separation; ``options``: deadline and webhook (``JobQueue.submit`` keywords)."""
        opts.model = self.registry.resolve_name(opts.model)
        self._check_model_options(opts)
        await self.check_audio_blob(audio_blob, self.settings.separator_max_upload_bytes)
        request = {"audio_blob": audio_blob, "options": opts.to_dict()}
        return await self.queue.submit(
            SEPARATE, request, owner=owner, idempotency_key=idempotency_key or None, **(options or {})
        )

    async def submit_analysis(
        self, audio_blob: str, *, owner: str = "", idempotency_key: str = "", options: dict[str, Any] | None = None
    ) -> JobRecord:
        await self.check_audio_blob(audio_blob, self.settings.separator_max_upload_bytes)
        return await self.queue.submit(
            ANALYZE,
            {"audio_blob": audio_blob},
            owner=owner,
            idempotency_key=idempotency_key or None,
            **(options or {}),
        )

    async def submit_audio_diff(
        self, pairs: list[tuple[str, str, str]], *, owner: str = "", idempotency_key: str = ""
    ) -> JobRecord:
        """A diff job over (stem, from_blob, to_blob) pairs; an empty side is an added or removed stem."""
        if not pairs:
            raise InvalidArgument("at least one stem pair is required")
        if len(pairs) > MAX_DIFF_PAIRS:
            raise InvalidArgument(f"at most {MAX_DIFF_PAIRS} stem pairs")
        names = [name for name, _, _ in pairs]
        if len(set(names)) != len(names) or not all(0 < len(n) <= 64 for n in names):
            raise InvalidArgument("stem names must be unique and 1 to 64 characters")
        for _name, a, b in pairs:
            if not a and not b:
                raise InvalidArgument("a stem pair needs at least one blob")
            for key in {a, b} - {""} if a != b else ():
                await self.check_audio_blob(key, self.settings.separator_max_upload_bytes)
        request = {"stems": [{"name": n, "from": a, "to": b} for n, a, b in pairs]}
        return await self.queue.submit(DIFF, request, owner=owner, idempotency_key=idempotency_key or None)

    async def analyze_inline(self, audio_blob: str) -> analysis.Analysis:
        await self.check_audio_blob(audio_blob, self.settings.separator_analyze_max_bytes)
        async with self._inline:
            return await asyncio.to_thread(self._analyze_blob, audio_blob)

    # -- work ------------------------------------------------------------------------

    def _scratch(self) -> tempfile.TemporaryDirectory[str]:
        root = self.settings.separator_work_dir
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix="separator-", dir=root)

    def _download(self, key: str, path: Path) -> None:
        """Stream the blob to a file (hash-verified at the end)."""
        with open(path, "wb") as fh:
            for chunk in self.blobs.iter_chunks(key):
                fh.write(chunk)

    def _analyze_blob(self, key: str) -> analysis.Analysis:
        with self._scratch() as tmp:
            path = Path(tmp) / "input"
            self._download(key, path)
            return analysis.analyze_file(
                path,
                max_duration_s=self.settings.separator_max_duration_s,
                max_analysis_s=self.settings.separator_analysis_window_s,
            )

    async def handle_analysis(self, jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            key = str(job.request.get("audio_blob", ""))
            await job.progress(0.0, "analysing")
            result = await asyncio.to_thread(self._analyze_blob, key)
            job.check_cancelled()
            await job.complete({}, result.to_dict())

    @staticmethod
    def diff_cache_key(from_blob: str, to_blob: str) -> str:
        return f"bf:audiodiff:v{audiodiff.VERSION}:{from_blob}:{to_blob}"

    async def handle_diff(self, jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            await self._run_diff(job)

    async def _run_diff(self, job: ClaimedJob) -> None:
        loop = asyncio.get_running_loop()
        pairs = [(str(p["name"]), str(p["from"]), str(p["to"])) for p in job.request.get("stems") or []]
        results: dict[str, Any] = {}
        for i, (name, a, b) in enumerate(pairs):
            base, share = i / len(pairs), 1 / len(pairs)
            await job.progress(base, f"{name}: comparing")
            if a == b:  # same content hash: unchanged, nothing decoded
                results[name] = audiodiff.unchanged().to_dict()
                continue
            if not a or not b:
                results[name] = audiodiff.StemDiff(status="added" if b else "removed", decoded=False).to_dict()
                continue
            cached = await self.queue.redis.get(self.diff_cache_key(a, b))
            if cached:
                results[name] = json.loads(cached)
                continue

            def report(fraction: float, stage: str, base: float = base, share: float = share, name: str = name) -> None:
                future = asyncio.run_coroutine_threadsafe(
                    job.progress(base + share * fraction, f"{name}: {stage}"), loop
                )
                future.result(timeout=30)
                if self.shutdown.is_set():
                    raise WorkerShutdown("worker is shutting down")
                job.check_cancelled()

            try:
                diff = await asyncio.to_thread(self._diff_blobs, a, b, report)
            except WorkerShutdown:
                await job.release()
                return
            results[name] = diff.to_dict()
            await self.queue.redis.set(
                self.diff_cache_key(a, b), json.dumps(results[name], separators=(",", ":")), ex=DIFF_CACHE_TTL_S
            )
        job.check_cancelled()
        await job.complete({}, {"version": audiodiff.VERSION, "stems": results})

    def _diff_blobs(self, a: str, b: str, report: audiodiff.Progress) -> audiodiff.StemDiff:
        with self._scratch() as tmp:
            pa, pb = Path(tmp) / "from", Path(tmp) / "to"
            self._download(a, pa)
            self._download(b, pb)
            return audiodiff.diff_files(pa, pb, progress=report, max_duration_s=self.settings.separator_max_duration_s)

    async def handle_separation(self, jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            await self._run_separation(job)

    async def _run_separation(self, job: ClaimedJob) -> None:
        loop = asyncio.get_running_loop()
        key = str(job.request.get("audio_blob", ""))
        opts = SeparationOptions.from_dict(dict(job.request.get("options") or {}))
        started = time.perf_counter()
        model = await asyncio.to_thread(self.registry.get, opts.model)
        check_options(opts, model.sources)
        segment_length_s(opts, model)

        def check_cancel() -> None:
            if self.shutdown.is_set():
                raise WorkerShutdown("worker is shutting down")
            job.check_cancelled()

        def report(fraction: float, stage: str) -> None:
            """From the worker thread: record progress (refreshes the cancel flag), then check it."""
            future = asyncio.run_coroutine_threadsafe(job.progress(fraction, stage), loop)
            future.result(timeout=30)
            check_cancel()

        def work() -> tuple[dict[str, str], dict[str, Any]]:
            with self._scratch() as tmp_name:
                tmp = Path(tmp_name)
                src = tmp / "input"
                self._download(key, src)
                check_cancel()
                handle, info = audio_stream.open_audio(src, max_duration_s=self.settings.separator_max_duration_s)
                handle.close()
                last_report = [0.0]

                def on_block(decoded: int) -> None:
                    """Decoding progress, at most once a second."""
                    now = time.monotonic()
                    if now - last_report[0] >= 1.0:
                        last_report[0] = now
                        report(DECODE_SHARE * min(1.0, decoded / max(1, info.frames)), "decoding")

                mix = audio_stream.prepare_mix(
                    src,
                    tmp / "mix.f32",
                    sample_rate=model.samplerate,
                    channels=model.audio_channels,
                    max_duration_s=self.settings.separator_max_duration_s,
                    on_block=on_block,
                )
                seg_s = segment_length_s(opts, model)
                total = segment_plan(model, opts, mix.frames)[4]
                report(DECODE_SHARE, f"separating 0/{total} segments")

                def on_segment(done: int, total: int) -> None:
                    frac = DECODE_SHARE + (1 - DECODE_SHARE - UPLOAD_SHARE) * done / total
                    report(frac, f"separating {done}/{total} segments")

                frames = mix.open()
                try:
                    result = separate(
                        model,
                        frames,
                        tmp / "stems",
                        opts,
                        mean=mix.mean,
                        std=mix.std,
                        on_segment=on_segment,
                        check_cancel=check_cancel,
                        segment_batch=segment_batch_for(self.settings.separator_segment_batch, model),
                    )
                finally:
                    frames.close()
                check_cancel()
                blobs: dict[str, str] = {}
                content_type = audio_stream.StemWriter.CONTENT_TYPES[opts.format]
                for name, path in result.stems.items():
                    blobs[name] = self.blobs.put_file(path, content_type=content_type)
                record = {
                    "model": model.name,
                    "requested_model": opts.model,
                    "sources": model.sources,
                    "stems": list(result.stems),
                    "format": opts.format,
                    "sample_rate": result.sample_rate,
                    "channels": model.audio_channels,
                    "frames": result.frames,
                    "duration_s": result.frames / result.sample_rate,
                    "segments": result.segments,
                    "segment_s": seg_s,
                    "overlap": opts.overlap,
                    "shifts": opts.shifts,
                    "residual_stem": result.residual_stem,
                    "residual_peak": result.residual_peak,
                    "input": {
                        "container": mix.source.container,
                        "sample_rate": mix.source.sample_rate,
                        "channels": mix.source.channels,
                        "frames": mix.source.frames,
                    },
                }
                return blobs, record

        try:
            blobs, record = await asyncio.to_thread(work)
        except WorkerShutdown:
            await job.release()
            return
        except JobCancelled:
            raise
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["realtime_factor"] = round(record["seconds"] / max(record["duration_s"], 1e-9), 4)
        await job.complete(blobs, record)
        log.info("separated %s into %s in %.1fs", key, sorted(blobs), record["seconds"])

    # -- lifecycle --------------------------------------------------------------------

    async def load_default_model(self) -> models.LoadedModel:
        return await asyncio.to_thread(self.registry.get, "")


def make_registry(settings: SeparatorSettings) -> models.ModelRegistry:
    return models.ModelRegistry(
        default=settings.separator_model,
        model_dir=settings.separator_model_dir,
        device=settings.separator_device,
        fallback_tiny=settings.separator_fallback_tiny,
    )


def segment_batch_for(setting: int, model: models.LoadedModel) -> int:
    """Segments per model pass: the setting, or (0: auto) 8 on CUDA and 1 on the CPU."""
    if setting > 0:
        return setting
    return 8 if model.device.type == "cuda" else 1
