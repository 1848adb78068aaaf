"""The generation worker: claims jobs in batches, decodes them together, stores the audio.

Batching policy: the worker runs the shared claim loop
(:func:`beatflow.common.jobs.run_worker`): it waits (blocking) for a first
job, then keeps claiming for at most ``max_wait_ms`` or until it holds
``max_batch`` jobs.
The jobs are grouped by model (text or melody) and by what the decoder can
decode in one call (``decoder.batch_key``: guidance scale and prompt length
for ``generate()``); each group is one batch whose rows are every variation
of every job in it. A static decoder runs one batch at a time and claims
again only when it is done (jobs it cannot start stay in the queue for other
replicas); a continuous decoder gets new batches while others run, up to
``max_batch`` held jobs. The batch size is recorded in each job's result and
logged.

While a batch decodes, a ticker publishes each job's progress (fraction of
decoder steps done) every ``progress_interval_s``, refreshes the claims and
watches for cancellation: a cancelled job is marked CANCELLED at once and its
rows stop within a few decoder steps. Out of memory: the batch is split in
halves and retried; a single job that still does not fit fails with a clear
error. The worker itself never stops on a job's error or a Redis outage:
claims and job-state writes are retried with backoff while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from beatflow.common.blobstore import BlobStore
from beatflow.common.errors import BeatflowError
from beatflow.common.jobs import ClaimedJob, JobKind, JobQueue, WorkerStatus, run_worker, settle
from beatflow.common.jobs.worker import TRANSIENT
from beatflow.common.logging import bind
from beatflow.common.tasks import cancel_and_wait
from beatflow.generator import audio_files
from beatflow.generator.chroma import chroma_features
from beatflow.generator.codec_audio import ChunkStreamer, CodecDecoder
from beatflow.generator.conform import conform_result
from beatflow.generator.decoders import DecodeRequest
from beatflow.generator.longform import WindowedPiece
from beatflow.generator.model_loading import ModelSlot, select_slot
from beatflow.generator.request import GenerationSpec

log = logging.getLogger(__name__)

KIND = JobKind.GENERATE


@dataclass
class WorkerConfig:
    max_batch: int = 8
    max_wait_ms: int = 100
    stream_chunk_s: float = 0.0  # > 0: stream the first variation's audio in chunks of about this length
    progress_interval_s: float = 0.5
    heartbeat_s: float = 5.0
    window_s: float = 30.0
    context_s: float = 10.0


@dataclass
class Generation:
    """A claimed job on its way through the worker."""

    job: ClaimedJob
    spec: GenerationSpec
    slot: ModelSlot
    pieces: list[WindowedPiece]
    prompt_frames: int = 0
    melody_s: float = 0.0
    claimed_at: float = field(default_factory=time.time)
    steps_done: dict[str, int] = field(default_factory=dict)
    cancelled: bool = False
    finished: bool = False
    last_progress: float = -1.0
    last_event_at: float = 0.0
    streamer: ChunkStreamer | None = None  # streams pieces[0] when chunks are enabled
    streamed: list[torch.Tensor] = field(default_factory=list)  # its new frames so far, in order
    stream_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    chunks: list[str] = field(default_factory=list)  # chunk blob keys sent

    def stream_codes(self) -> torch.Tensor:
        """The streamed piece's codes so far: its audio prompt, then every new frame."""
        parts = [self.pieces[0].prompt_codes.cpu()] if self.pieces[0].prompt_codes is not None else []
        parts += self.streamed
        if not parts:
            return torch.empty((self.slot.lm.num_codebooks, 0), dtype=torch.long)
        return torch.cat(parts, dim=1)

    @property
    def id(self) -> str:
        return self.job.id

    def fraction(self) -> float:
        delay = self.slot.lm.channel_codebooks - 1
        total = sum(p.steps_total(delay) for p in self.pieces)
        done = sum(self.steps_done.get(p.piece_id, 0) for p in self.pieces)
        return done / total if total else 0.0

    def stage(self) -> str:
        delay = self.slot.lm.channel_codebooks - 1
        total = sum(p.steps_total(delay) for p in self.pieces)
        done = sum(self.steps_done.get(p.piece_id, 0) for p in self.pieces)
        return f"decoding {done}/{total} steps"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class GenerationWorker:
    def __init__(
        self,
        queue: JobQueue,
        store: BlobStore,
        slots: dict[str, ModelSlot],
        config: WorkerConfig,
        *,
        consumer: str,
    ) -> None:
        self.queue = queue
        self.store = store
        self.slots = slots
        self.config = config
        self.consumer = consumer
        self.held: dict[str, Generation] = {}
        self.status = WorkerStatus("generation")
        self.batches_run = 0
        self._codec_decoders: dict[str, CodecDecoder] = {}
        self.aborting = False  # shutting down past the grace period: stop decoding, release jobs

    @property
    def continuous(self) -> bool:
        return all(s.decoder.continuous for s in self.slots.values())

    # -- the claim loop (the shared one) -------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until ``stop`` is set (then running batches finish) or cancelled."""
        log.info(
            "generation worker %s: max_batch=%d max_wait_ms=%d backend=%s",
            self.consumer,
            self.config.max_batch,
            self.config.max_wait_ms,
            ",".join(f"{r}:{s.decoder.name}" for r, s in self.slots.items()),
        )
        ticker = asyncio.create_task(self._tick_forever())
        try:
            await run_worker(
                self.queue,
                KIND,
                self.handle,
                consumer=self.consumer,
                # a static decoder runs one batch at a time; a continuous one takes new
                # batches while others run, up to max_batch held jobs in all
                concurrency=self.config.max_batch if self.continuous else 1,
                batch=self.config.max_batch,
                max_wait_ms=self.config.max_wait_ms,
                max_jobs=self.config.max_batch,
                heartbeat_s=self.config.heartbeat_s,
                stop=stop,
                block_ms=500,
                status=self.status,
            )
        finally:
            await cancel_and_wait(ticker)

    async def handle(self, jobs: list[ClaimedJob]) -> None:
        """One claimed batch: prepare each job, group compatible ones, decode the groups."""
        gens = [g for g in await asyncio.gather(*(self._prepare(j) for j in jobs)) if g is not None]
        groups = self.group(gens)
        try:
            if self.continuous:
                outcomes = await asyncio.gather(*(self._decode_group(g) for g in groups), return_exceptions=True)
                errors = [o for o in outcomes if isinstance(o, BaseException)]
                if errors:
                    raise errors[0]
            else:
                for group in groups:
                    await self._decode_group(group)
        finally:
            for gen in gens:
                self.held.pop(gen.id, None)
                if gen.job.lost:  # another worker runs it now: nothing for this one to record
                    gen.job.finished = True

    # -- preparing inputs -----------------------------------------------------------------

    async def _prepare(self, job: ClaimedJob) -> Generation | None:
        with bind(job_id=job.id):
            try:
                spec = GenerationSpec.from_dict(job.request)
                slot = select_slot(self.slots, spec)
                gen = await asyncio.to_thread(self._build, job, spec, slot)
            except BeatflowError as exc:
                log.info("generation job rejected: %s", exc.message)
                reason = exc.message
                await settle(lambda: job.fail(reason, retryable=False), f"failing job {job.id}")
                return None
            except Exception as exc:
                log.exception("preparing generation job failed")
                error = f"could not prepare the job: {type(exc).__name__}: {exc}"
                await settle(lambda: job.fail(error, retryable=True), f"failing job {job.id}")
                return None
            if job.cancel_requested:
                await settle(job.mark_cancelled, f"cancelling job {job.id}")
                return None
            self.held[job.id] = gen
            try:
                await job.progress(0.0, "queued for decoding")
            except TRANSIENT as exc:  # the ticker reports progress again shortly
                log.warning("progress for job %s failed: %s", job.id, exc)
            return gen

    def _build(self, job: ClaimedJob, spec: GenerationSpec, slot: ModelSlot) -> Generation:
        lm = slot.lm
        prompt_codes = None
        chroma = None
        melody_s = 0.0
        if spec.prompt_audio_blob:
            wav = audio_files.load_for_model(
                self.store.get_bytes(spec.prompt_audio_blob), lm.sample_rate, lm.audio_channels
            )
            prompt_codes = lm.encode_audio(torch.from_numpy(wav)).cpu()
        if spec.melody_blob:
            wav = audio_files.load_for_model(self.store.get_bytes(spec.melody_blob), lm.sample_rate, 1)
            melody_s = wav.shape[1] / lm.sample_rate
            chroma = chroma_features(wav, lm.sample_rate, num_chroma=lm.num_chroma, max_seconds=None)
        frames = lm.frames_for_seconds(spec.duration_s)
        pieces = [
            WindowedPiece(
                piece_id=f"{job.id}/{i}",
                description=spec.description,
                new_frames=frames,
                seed=seed,
                sampling=spec.sampling,
                guidance_scale=spec.guidance_scale,
                prompt_codes=prompt_codes,
                chroma=chroma,
            )
            for i, seed in enumerate(spec.seeds())
        ]
        for p in pieces:
            slot.window_runner.plan(p)
        prompt_frames = 0 if prompt_codes is None else int(prompt_codes.shape[1])
        gen = Generation(job, spec, slot, pieces, prompt_frames=prompt_frames, melody_s=melody_s)
        if self.config.stream_chunk_s > 0:
            decoder = self._codec_decoders.setdefault(slot.role, CodecDecoder(lm.model))
            chunk = max(1, round(self.config.stream_chunk_s * lm.frame_rate))
            gen.streamer = ChunkStreamer(decoder, chunk, prompt_frames + frames)
        return gen

    # -- batching -------------------------------------------------------------------------

    @staticmethod
    def _key(gen: Generation) -> Hashable:
        p = gen.pieces[0]
        first = DecodeRequest(
            request_id=p.piece_id,
            description=p.description,
            new_frames=p.windows[0].new_frames,
            seed=p.seed,
            sampling=p.sampling,
            guidance_scale=p.guidance_scale,
            prompt_codes=p.prompt_codes,
            chroma=p.chroma,
        )
        return (gen.slot.role, gen.slot.decoder.batch_key(first))

    def group(self, gens: Sequence[Generation]) -> list[list[Generation]]:
        """Compatible jobs together, in claim order."""
        groups: dict[Hashable, list[Generation]] = {}
        for gen in gens:
            groups.setdefault(self._key(gen), []).append(gen)
        return list(groups.values())

    # -- running a batch ------------------------------------------------------------------

    async def _decode_group(self, group: list[Generation]) -> None:
        group = [g for g in group if not g.cancelled]
        if not group:
            return
        slot = group[0].slot
        rows = sum(len(g.pieces) for g in group)
        ids = [g.id for g in group]
        self.batches_run += 1
        log.info("decoding batch of %d jobs (%d rows) with %s: %s", len(group), rows, slot.decoder.name, ids)
        by_piece = {p.piece_id: g for g in group for p in g.pieces}

        def on_progress(piece_id: str, done: int, _total: int) -> None:
            gen = by_piece.get(piece_id)
            if gen is not None:
                gen.steps_done[piece_id] = done

        def is_cancelled(piece_id: str) -> bool:
            gen = by_piece.get(piece_id)
            return gen is None or gen.cancelled or self.aborting

        streamed = {g.pieces[0].piece_id: g for g in group if g.streamer is not None}

        def on_frames(piece_id: str, _start: int, codes: torch.Tensor) -> None:
            gen = streamed.get(piece_id)
            if gen is not None:
                gen.streamed.append(codes.cpu())

        pieces = [p for g in group for p in g.pieces]
        for p in pieces:
            p.codes, p.cancelled, p.batch_size = None, False, 0
        for g in group:
            g.streamed.clear()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            await asyncio.to_thread(
                slot.window_runner.run, pieces, on_progress, is_cancelled, on_frames if streamed else None
            )
        except Exception as exc:
            error = exc
        decode_s = time.perf_counter() - started
        if self.aborting:
            for gen in group:
                if not gen.finished:
                    gen.finished = True
                    with contextlib.suppress(Exception):  # unreleased: reclaimed after the heartbeat timeout
                        await gen.job.release()
            log.warning("worker stopping: released %d unfinished jobs back to the queue", len(group))
            return
        if error is not None:
            await self._handle_error(group, error)
            return
        for gen in group:
            with bind(job_id=gen.id):
                try:
                    if gen.cancelled or any(p.cancelled for p in gen.pieces):
                        if not gen.finished:
                            gen.finished = True
                            await settle(gen.job.mark_cancelled, f"cancelling job {gen.id}")
                        continue
                    try:
                        await self._finish(gen, decode_s, len(group), rows)
                    except Exception as exc:
                        log.exception("storing the result failed")
                        reason = f"could not store the result: {type(exc).__name__}: {exc}"
                        await settle(functools.partial(gen.job.fail, reason), f"failing job {gen.id}")
                except Exception:  # Redis away past settle's patience: a live worker reclaims the job
                    log.exception("could not record the outcome of job %s; it will be reclaimed", gen.id)

    async def _handle_error(self, group: list[Generation], error: BaseException) -> None:
        if is_out_of_memory(error):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            live = [g for g in group if not g.cancelled]
            if len(live) > 1:
                half = len(live) // 2
                log.warning(
                    "out of memory with %d jobs in the batch; retrying as %d + %d", len(live), half, len(live) - half
                )
                await self._decode_group(live[:half])
                await self._decode_group(live[half:])
                return
            for gen in live:
                rows = len(gen.pieces)
                msg = (
                    f"out of GPU memory generating {gen.spec.duration_s:g} s x {rows} variation(s) even alone; "
                    "ask for a shorter duration or fewer variations"
                )
                log.error("%s: %s", gen.id, msg)
                gen.finished = True
                await settle(functools.partial(gen.job.fail, msg, retryable=False), f"failing job {gen.id}")
            return
        log.error("generation batch failed: %s", error, exc_info=error)
        message = f"generation failed: {type(error).__name__}: {error}"
        for gen in group:
            if not gen.finished:
                gen.finished = True
                if gen.cancelled:
                    await settle(gen.job.mark_cancelled, f"cancelling job {gen.id}")
                else:
                    await settle(functools.partial(gen.job.fail, message, retryable=True), f"failing job {gen.id}")

    async def _tick_forever(self) -> None:
        """Progress, claim refresh and cancellation for every held job, running or waiting."""
        while True:
            await self.tick()
            await asyncio.sleep(self.config.progress_interval_s)

    async def tick(self) -> None:
        for gen in list(self.held.values()):
            if gen.finished or gen.cancelled:
                continue
            try:
                fraction = min(0.95, 0.95 * gen.fraction())
                now = time.monotonic()
                if fraction > gen.last_progress or now - gen.last_event_at >= 1.0:
                    await gen.job.progress(fraction, gen.stage())
                    gen.last_progress, gen.last_event_at = fraction, now
                else:
                    await gen.job.heartbeat()
                if gen.streamer is not None and not gen.stream_lock.locked():
                    await self._stream(gen)
                if gen.job.cancel_requested or gen.job.lost:
                    gen.cancelled = True
                    gen.finished = True
                    if gen.job.lost:
                        log.warning("job %s was taken over by another worker; dropping it", gen.id)
                    else:
                        log.info("job %s cancelled", gen.id)
                        await settle(gen.job.mark_cancelled, f"cancelling job {gen.id}")
            except TRANSIENT as exc:  # Redis away: the next tick tries again
                log.warning("progress update for %s failed: %s", gen.id, exc)
            except Exception:
                log.exception("progress update for %s failed", gen.id)

    async def _stream(self, gen: Generation) -> None:
        """Send the next chunk of the first variation's audio when enough stable frames are done."""
        assert gen.streamer is not None
        codes = gen.stream_codes()
        if not gen.streamer.due(int(codes.shape[1])):
            return
        async with gen.stream_lock:
            key = await asyncio.to_thread(self._chunk_blob, gen, codes, False)
            gen.chunks.append(key)
            await gen.job.progress(gen.last_progress, gen.stage(), chunk_blob=key)

    def _chunk_blob(self, gen: Generation, codes: torch.Tensor, final: bool) -> str:
        assert gen.streamer is not None
        audio = gen.streamer.take(codes, final)
        data = audio_files.encode(audio, gen.slot.lm.sample_rate, "wav")
        return self.store.put_bytes(data, content_type="audio/wav")

    # -- results ---------------------------------------------------------------------------

    async def _finish(self, gen: Generation, decode_s: float, batch_jobs: int, batch_rows: int) -> None:
        try:
            await gen.job.progress(0.96, "encoding audio")
        except TRANSIENT as exc:  # only a progress event: the result still gets stored
            log.warning("progress for job %s failed: %s", gen.id, exc)
        lm = gen.slot.lm
        spec = gen.spec
        encode_started = time.perf_counter()

        def render(piece: WindowedPiece) -> tuple[str, int, dict[str, Any] | None]:
            assert piece.codes is not None
            wav, conformed = conform_result(lm.decode_codes(piece.codes).numpy(), lm.sample_rate, spec)
            data = audio_files.encode(wav, lm.sample_rate, spec.format)
            key = self.store.put_bytes(data, content_type=audio_files.CONTENT_TYPES[spec.format])
            return key, int(wav.shape[-1]), conformed

        if gen.streamer is not None and gen.pieces[0].codes is not None:
            async with gen.stream_lock:
                key = await asyncio.to_thread(self._chunk_blob, gen, gen.pieces[0].codes, True)
                gen.chunks.append(key)
            await settle(lambda: gen.job.progress(0.96, "last audio chunk", chunk_blob=key), f"progress of {gen.id}")
        blobs: dict[str, str] = {}
        samples = 0
        conformed: list[dict[str, Any] | None] = []
        for i, piece in enumerate(gen.pieces):
            key, samples, report = await asyncio.to_thread(render, piece)
            blobs["audio" if i == 0 else f"audio.{i}"] = key
            conformed.append(report)
        encode_s = time.perf_counter() - encode_started
        audio_s = samples / lm.sample_rate
        record = self.record(gen, decode_s=decode_s, encode_s=encode_s, audio_s=audio_s)
        record["batch_jobs"] = batch_jobs
        record["batch_size"] = batch_rows
        record["chunks"] = len(gen.chunks)
        record["conform"] = conformed if any(conformed) else None  # one report per variation
        gen.finished = True
        await settle(lambda: gen.job.complete(blobs, record), f"completing job {gen.id}")
        log.info(
            "generation done: %d audio(s) of %.2f s in a batch of %d jobs (%d rows), decode %.2f s",
            len(blobs),
            audio_s,
            batch_jobs,
            batch_rows,
            decode_s,
        )

    def record(self, gen: Generation, *, decode_s: float, encode_s: float, audio_s: float) -> dict[str, Any]:
        """The generation record stored with the result (and by the VCS with the commit)."""
        lm = gen.slot.lm
        spec = gen.spec
        runner = gen.slot.window_runner
        new_s = gen.pieces[0].new_frames / lm.frame_rate
        return {
            "type": spec.kind,
            "prompt": spec.prompt,
            "description": spec.description,
            "hints": spec.hints.to_dict(),
            "model": lm.spec,
            "model_info": lm.info(),
            "backend": gen.slot.decoder.name,
            "seed": spec.seed,
            "seeds": spec.seeds(),
            "sampling": {
                "top_k": spec.sampling.top_k,
                "top_p": spec.sampling.top_p,
                "temperature": spec.sampling.temperature,
                "greedy": spec.sampling.greedy,
                "guidance_scale": spec.guidance_scale,
            },
            "duration_s": spec.duration_s,
            "num_variations": len(gen.pieces),
            "format": spec.format,
            "sample_rate": lm.sample_rate,
            "channels": lm.audio_channels,
            "audio_duration_s": audio_s,
            "generated_duration_s": new_s,
            "prompt_audio_blob": spec.prompt_audio_blob,
            "prompt_duration_s": gen.prompt_frames / lm.frame_rate,
            "melody_blob": spec.melody_blob,
            "melody_duration_s": gen.melody_s,
            "windows": len(gen.pieces[0].windows),
            "window_s": runner.window_frames / lm.frame_rate,
            "context_s": runner.context_frames / lm.frame_rate,
            "decode_steps": gen.pieces[0].steps_total(lm.channel_codebooks - 1),
            "timings": {
                "queued_s": max(0.0, gen.claimed_at - gen.job.record.created_at),
                "decode_s": decode_s,
                "encode_s": encode_s,
                "realtime_factor": (new_s * len(gen.pieces)) / decode_s if decode_s > 0 else None,
            },
        }
