"""Wiring: settings -> blob store, job queue, the service, gRPC server (Generator + Jobs) and the worker.

``create_server`` builds the server without loading anything; the model
loads once in :meth:`GeneratorApp.start` (``serve`` calls it as its ``ready``
step), and health turns SERVING only after that. Which models load and how:
``model_loading.py``; what the RPCs do: ``service.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from beatflow.common import metrics
from beatflow.common.blobstore import BlobStore, make_blob_store
from beatflow.common.grpcserver import DependencyProbe, GrpcServer, HealthCheck, Service, create_grpc_server
from beatflow.common.jobs import JobQueue, WebhookStore, start_job_maintenance
from beatflow.common.jobs.servicer import jobs_service
from beatflow.common.tasks import cancel_and_wait
from beatflow.generator.config import GeneratorSettings
from beatflow.generator.models import LoadedModel
from beatflow.generator.service import GeneratorService
from beatflow.generator.servicer import GeneratorServicer
from beatflow.generator.worker import KIND, GenerationWorker, WorkerConfig
from beatflow.v1 import generator_pb2, generator_pb2_grpc

log = logging.getLogger(__name__)


class GeneratorApp:
    """The running parts: queue, blob store, the service with its models, and the worker task."""

    def __init__(
        self, settings: GeneratorSettings, store: BlobStore | None = None, model: LoadedModel | None = None
    ) -> None:
        self.settings = settings
        self._preloaded = model
        self.queue = JobQueue.from_settings(settings)
        self.store = store if store is not None else make_blob_store(settings)
        self.service = GeneratorService(settings, self.queue, self.store)
        self.worker: GenerationWorker | None = None
        self._stop = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._stop_depth_sampler: Callable[[], Awaitable[None]] | None = None
        self._stop_maintenance: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        """Load the model(s) once and start the worker; the server reports SERVING after this."""
        if self.service.ready:
            return
        await self.service.load_models(self._preloaded)
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
            self.worker = GenerationWorker(self.queue, self.store, self.service.slots, config, consumer=consumer)
            self._worker_task = asyncio.create_task(self.worker.run(self._stop))
            # beatflow_job_queue_depth{kind="generate"}: what the gpu overlay's HPA scales on.
            self._stop_depth_sampler = metrics.start_queue_depth_sampler(self.queue, [KIND])

    def _stream_chunk_s(self) -> float:
        chunk = self.settings.generator_stream_chunk_s
        if chunk is None:
            return 1.0 if self.service.slots["text"].lm.device.type == "cuda" else 0.0
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
                    await cancel_and_wait(task, bound)
            except Exception:
                log.exception("generation worker ended with an error")
        slots = self.service.slots.values()
        decoders = {id(slot.decoder): slot.decoder for slot in slots}  # melody may share text's
        for decoder in decoders.values():
            close = getattr(decoder, "close", None)  # the engine's step thread; generate() has none
            if close is not None:
                try:
                    await asyncio.wait_for(asyncio.to_thread(close), bound)
                except TimeoutError:
                    log.error("the %s decoder did not close within %.0fs", decoder.name, bound)
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
                GeneratorServicer(app.service),
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
