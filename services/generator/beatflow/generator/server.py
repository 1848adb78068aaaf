"""Generator gRPC server: Generator + Jobs services, the model(s) and the worker.

``create_server`` builds the server without loading anything; the model
loads once in :meth:`GeneratorApp.start` (``serve`` calls it as its ``ready``
step), and health turns SERVING only after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import torch

from beatflow.common import metrics
from beatflow.common.blobstore import BlobStore, make_blob_store
from beatflow.common.errors import FailedPrecondition, Unavailable
from beatflow.common.grpcserver import DependencyProbe, GrpcServer, HealthCheck, Service, create_grpc_server
from beatflow.common.jobs import JobQueue, JobRecord, WebhookStore, start_job_maintenance
from beatflow.common.jobs.queue import request_fingerprint
from beatflow.common.jobs.servicer import jobs_service
from beatflow.generator.backend import choose_backend, make_backend
from beatflow.generator.config import GeneratorSettings
from beatflow.generator.longform import Composer
from beatflow.generator.models import LoadedModel, ModelLoadError, load_model
from beatflow.generator.request import GenerationSpec, Limits, validate
from beatflow.generator.servicer import GeneratorServicer
from beatflow.generator.uploads import check_upload
from beatflow.generator.worker import KIND, GenerationWorker, ModelSlot, WorkerConfig, select_slot
from beatflow.v1 import generator_pb2, generator_pb2_grpc

log = logging.getLogger(__name__)


def limits_from(settings: GeneratorSettings) -> Limits:
    window = settings.generator_max_window_s
    return Limits(
        max_duration_s=settings.generator_max_duration_s,
        default_duration_s=settings.generator_default_duration_s,
        max_prompt_chars=settings.generator_max_prompt_chars,
        max_variations=settings.generator_max_variations,
        max_upload_bytes=settings.generator_max_upload_bytes,
        max_upload_s=settings.generator_max_upload_s,
        # the prompt and at least a second of new audio must fit in the first window
        max_prompt_audio_s=min(settings.generator_max_prompt_audio_s, window - 1.0),
        min_melody_s=settings.generator_min_melody_s,
        silence_db=settings.generator_silence_db,
    )


def _load(spec: str, fallback: str, settings: GeneratorSettings) -> LoadedModel:
    try:
        return load_model(spec, settings.generator_device, settings.generator_dtype)
    except ModelLoadError as exc:
        if not settings.generator_fallback_tiny or spec == fallback:
            raise
        log.warning("%s -- BEATFLOW_GENERATOR_FALLBACK_TINY is set: serving the random-weight %r preset", exc, fallback)
        return load_model(fallback, settings.generator_device, settings.generator_dtype)


def melody_spec_for(setting: str, main: LoadedModel) -> tuple[str, bool]:
    """The melody model to load (``""``: none) and whether failing to load it is fatal."""
    value = setting.strip()
    if value.lower() in ("", "none"):
        return "", False
    if value.lower() != "auto":
        return value, True
    if main.spec.startswith("tiny"):
        return "tiny-melody", False
    if main.spec.endswith("-arch"):
        return "melody-arch", False
    return "facebook/musicgen-melody", False


def load_slots(settings: GeneratorSettings, model: LoadedModel | None = None) -> dict[str, ModelSlot]:
    """Load the main model (and the melody model, if configured) with their backends.

    ``model``: an already loaded main model to serve instead of loading ``generator_model``.
    """
    if settings.generator_torch_threads > 0:
        torch.set_num_threads(settings.generator_torch_threads)

    def slot(role: str, lm: LoadedModel) -> ModelSlot:
        backend = make_backend(settings.generator_backend, lm, window_s=settings.generator_max_window_s)
        composer = Composer(lm, backend, settings.generator_max_window_s, settings.generator_context_s)
        return ModelSlot(role, lm, backend, composer)

    main = model if model is not None else _load(settings.generator_model, "tiny", settings)
    slots = {"text": slot("text", main)}
    melody_spec, required = melody_spec_for(settings.generator_melody_model, main)
    if main.is_melody:
        slots["melody"] = slots["text"]
    elif melody_spec:
        try:
            melody = _load(melody_spec, "tiny-melody", settings)
        except ModelLoadError as exc:
            if required:
                raise
            log.warning("%s -- serving without hum-to-beat (set BEATFLOW_GENERATOR_MELODY_MODEL)", exc)
        else:
            if not melody.is_melody:
                raise ModelLoadError(f"melody model {melody.spec!r} has no melody conditioning")
            slots["melody"] = slot("melody", melody)
    for role, s in slots.items():
        _, why = choose_backend(settings.generator_backend, s.lm.device)
        log.info(
            "%s model %s loaded on %s (%s), backend %s: %s",
            role,
            s.lm.spec,
            s.lm.device,
            s.lm.dtype,
            s.backend.name,
            why,
        )
    return slots


class GeneratorApp:
    """The service's state: queue, blob store, models and the worker task."""

    def __init__(
        self, settings: GeneratorSettings, store: BlobStore | None = None, model: LoadedModel | None = None
    ) -> None:
        self.settings = settings
        self._preloaded = model
        self.queue = JobQueue.from_settings(settings)
        self.store = store if store is not None else make_blob_store(settings)
        self.limits = limits_from(settings)
        self.slots: dict[str, ModelSlot] = {}
        self.worker: GenerationWorker | None = None
        self._stop = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._stop_depth_sampler: Callable[[], Awaitable[None]] | None = None
        self._stop_maintenance: Callable[[], Awaitable[None]] | None = None

    @property
    def ready(self) -> bool:
        return bool(self.slots)

    async def start(self) -> None:
        """Load the model(s) once and start the worker; the server reports SERVING after this."""
        if self.ready:
            return
        self.slots = await asyncio.to_thread(load_slots, self.settings, self._preloaded)
        # deadlines, retry backoff and webhook deliveries (any replica may do them)
        self._stop_maintenance = start_job_maintenance(
            self.queue, [KIND], WebhookStore.from_settings(self.settings, self.queue.redis)
        )
        if self.settings.generator_run_worker:
            consumer = f"generator-{socket.gethostname()}-{os.getpid()}-{id(self):x}"
            config = WorkerConfig(
                max_batch=self.settings.generator_max_batch,
                max_wait_ms=self.settings.generator_max_wait_ms,
                progress_interval_s=self.settings.generator_progress_interval_s,
                window_s=self.settings.generator_max_window_s,
                context_s=self.settings.generator_context_s,
                stream_chunk_s=self._stream_chunk_s(),
            )
            self.worker = GenerationWorker(self.queue, self.store, self.slots, config, consumer=consumer)
            self._worker_task = asyncio.create_task(self.worker.run(self._stop))
            # beatflow_job_queue_depth{kind="generate"}: what the gpu overlay's HPA scales on.
            self._stop_depth_sampler = metrics.start_queue_depth_sampler(self.queue, [KIND])

    def _stream_chunk_s(self) -> float:
        chunk = self.settings.generator_stream_chunk_s
        if chunk is None:
            return 1.0 if self.slots["text"].lm.device.type == "cuda" else 0.0
        return max(0.0, chunk)

    async def close(self) -> None:
        """Stop claiming, let running batches finish within the grace period, then release them.

        Every step is bounded: past the grace period decoding is told to stop and
        its jobs are released; if that takes longer than ``stop_timeout_s`` the
        worker is cancelled (its jobs are released, or reclaimed by another
        worker after the heartbeat timeout when Redis cannot be reached).
        """
        self._stop.set()
        bound = self.settings.stop_timeout_s
        if self._stop_depth_sampler is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stop_depth_sampler(), bound)
        if self._stop_maintenance is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stop_maintenance(), bound)
        task = self._worker_task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self.settings.grace_period_s)
            except TimeoutError:
                log.warning("running generation did not finish within the grace period; releasing its jobs")
                if self.worker is not None:
                    self.worker.aborting = True
                _done, pending = await asyncio.wait([task], timeout=bound)
                if pending:
                    log.error("the generation worker did not stop within %.0fs; cancelling it", bound)
                    task.cancel()
                    await asyncio.wait([task], timeout=bound)
            except Exception:
                log.exception("generation worker ended with an error")
        backends = {id(slot.backend): slot.backend for slot in self.slots.values()}  # melody may share text's
        for backend in backends.values():
            close = getattr(backend, "close", None)  # the engine's step thread; generate() has none
            if close is not None:
                try:
                    await asyncio.wait_for(asyncio.to_thread(close), bound)
                except TimeoutError:
                    log.error("the %s backend did not close within %.0fs", backend.name, bound)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.queue.redis.aclose(), bound)

    def health_checks(self) -> list[HealthCheck]:
        """Health turns NOT_SERVING while Redis is away too long or the worker loop has died."""

        async def worker_alive() -> str | None:
            task = self._worker_task
            if task is None or self._stop.is_set():
                return None
            if task.done():
                return "the generation worker loop ended"
            return self.worker.status.problem(self.settings.health_outage_s) if self.worker else None

        redis = DependencyProbe("redis", self.queue.redis.ping, self.settings.health_outage_s)
        return [redis, worker_alive]

    def _require_ready(self) -> None:
        if not self.ready:
            raise Unavailable("the generator is still loading its model; retry shortly")

    async def submit(
        self, spec: GenerationSpec, *, idempotency_key: str | None = None, options: dict[str, Any] | None = None
    ) -> JobRecord:
        """Validate (limits, uploads, model support) and queue a generation job.

        ``options``: deadline and webhook (``JobQueue.submit`` keywords). The job's
        size for ETAs is the audio it produces: duration times variations.
        """
        self._require_ready()
        asked = request_fingerprint(spec.to_dict())  # before validate draws a seed: the client's request
        spec = validate(spec, self.limits)
        if spec.melody_blob:
            select_slot(self.slots, spec)
            await check_upload(self.store, spec.melody_blob, "melody", self.limits)
        if spec.prompt_audio_blob:
            slot = select_slot(self.slots, spec)
            if slot.lm.audio_channels not in (1, 2):
                raise FailedPrecondition("the model cannot be prompted with audio")
            await check_upload(self.store, spec.prompt_audio_blob, "audio prompt", self.limits)
        return await self.queue.submit(
            KIND,
            spec.to_dict(),
            owner=spec.owner,
            idempotency_key=idempotency_key,
            size_s=spec.duration_s * spec.num_variations,
            fingerprint=asked,
            **(options or {}),
        )

    def model_info(self) -> dict[str, Any]:
        self._require_ready()
        main = self.slots["text"]
        melody = self.slots.get("melody")
        return {
            "spec": main.lm.spec,
            "device": str(main.lm.device),
            "dtype": str(main.lm.dtype).removeprefix("torch."),
            "sample_rate": main.lm.sample_rate,
            "channels": main.lm.audio_channels,
            "frame_rate": main.lm.frame_rate,
            "supports_melody": melody is not None,
            "max_duration_s": self.limits.max_duration_s,
            "max_batch": self.settings.generator_max_batch,
            "melody_spec": melody.lm.spec if melody is not None else "",
            "backend": main.backend.name,
            "backend_reason": choose_backend(self.settings.generator_backend, main.lm.device)[1],
            "window_s": self.settings.generator_max_window_s,
            "max_variations": self.limits.max_variations,
            "max_prompt_chars": self.limits.max_prompt_chars,
            "num_codebooks": main.lm.num_codebooks,
            "max_wait_ms": self.settings.generator_max_wait_ms,
        }


@dataclass
class GeneratorServer(GrpcServer):
    """The gRPC server plus the app whose ``start`` loads the model."""

    app: GeneratorApp | None = None

    async def ready(self) -> None:
        assert self.app is not None
        await self.app.start()


async def create_server(
    settings: GeneratorSettings, *, store: BlobStore | None = None, model: LoadedModel | None = None
) -> tuple[GeneratorServer, int]:
    """Build (not start) the server; ``await server.ready()`` loads the model (``serve`` does it).

    ``store`` and ``model`` replace the blob store and main model the settings name (benchmarks).
    """
    app = GeneratorApp(settings, store, model)
    gs = create_grpc_server(
        settings,
        [
            Service(
                generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name,
                generator_pb2_grpc.add_GeneratorServicer_to_server,
                GeneratorServicer(app),
            ),
            jobs_service(app.queue),
        ],
    )
    server = GeneratorServer(
        server=gs.server,
        port=gs.port,
        health=gs.health,
        service_names=gs.service_names,
        on_stop=gs.on_stop,
        checks=app.health_checks(),
        stop_timeout_s=gs.stop_timeout_s,
        app=app,
    )
    server.on_stop.append(app.close)
    return server, server.port
