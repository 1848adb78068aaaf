"""Wiring: settings -> model registry, blob store, job queue, gRPC server and job workers.

The server is built NOT_SERVING; ``SeparatorApp.ready()`` loads the default
model (once) and starts the job workers, and only then does health turn
SERVING. ``create_server`` does that in the background for callers that only
start the server (tests, the embedded stack); ``__main__`` passes ``ready`` to
``serve`` so a model that cannot be loaded stops the process with its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import torch

from beatflow.common.blobstore import BlobStore, make_blob_store
from beatflow.common.grpcserver import DependencyProbe, GrpcServer, HealthCheck, Service, create_grpc_server
from beatflow.common.jobs import (
    JobQueue,
    WebhookStore,
    WorkerStatus,
    connect_redis,
    jobs_service,
    run_worker,
    start_job_maintenance,
)
from beatflow.common.tasks import cancel_and_wait
from beatflow.separator.config import SeparatorSettings
from beatflow.separator.service import ANALYZE, DIFF, SEPARATE, SeparatorService, make_registry
from beatflow.separator.servicer import SeparatorServicer
from beatflow.v1 import separator_pb2, separator_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class SeparatorApp:
    settings: SeparatorSettings
    grpc: GrpcServer
    service: SeparatorService
    queue: JobQueue
    redis: aioredis.Redis
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _workers: list[asyncio.Task[None]] = field(default_factory=list)
    _ready_task: asyncio.Task[None] | None = None
    _stop_maintenance: Callable[[], Awaitable[None]] | None = None
    _status: dict[str, WorkerStatus] = field(
        default_factory=lambda: {
            SEPARATE: WorkerStatus("separation"),
            ANALYZE: WorkerStatus("analysis"),
            DIFF: WorkerStatus("audio diff"),
        }
    )

    @property
    def port(self) -> int:
        return self.grpc.port

    async def ready(self) -> None:
        """Load the default model, then start the job workers (call before SERVING)."""
        model = await self.service.load_default_model()
        log.info("model %s ready (%s, %d Hz)", model.name, ",".join(model.sources), model.samplerate)
        if self._stop_maintenance is None:  # deadlines, retry backoff, webhook deliveries
            self._stop_maintenance = start_job_maintenance(
                self.queue, [SEPARATE, ANALYZE], WebhookStore.from_settings(self.settings, self.redis)
            )
        if self.settings.separator_run_workers and not self._workers:
            consumer = f"separator-{socket.gethostname()}-{os.getpid()}-{id(self):x}"
            s = self.settings
            loops = [
                (SEPARATE, self.service.handle_separation, s.separator_concurrency),
                (ANALYZE, self.service.handle_analysis, s.separator_analysis_concurrency),
                (DIFF, self.service.handle_diff, s.separator_analysis_concurrency),
            ]
            self._workers = [
                asyncio.create_task(
                    run_worker(
                        self.queue,
                        kind,
                        handler,
                        consumer=consumer,
                        concurrency=concurrency,
                        heartbeat_s=s.separator_heartbeat_s,
                        stop=self._stop,
                        block_ms=s.separator_claim_block_ms,
                        status=self._status[kind],
                    ),
                    name=f"{kind}-worker",
                )
                for kind, handler, concurrency in loops
            ]

    def health_checks(self) -> list[HealthCheck]:
        """Health turns NOT_SERVING while Redis is away too long or a worker loop has died."""

        async def workers_alive() -> str | None:
            if self._stop.is_set():
                return None
            for task in self._workers:
                if task.done():
                    return f"the {task.get_name()} loop ended"
            for status in self._status.values():
                if self._workers and (found := status.problem(self.settings.health_outage_s)):
                    return found
            return None

        return [DependencyProbe("redis", self.redis.ping, self.settings.health_outage_s), workers_alive]

    async def close(self) -> None:
        """Stop taking jobs, let running ones finish within the grace period, then release them."""
        if self._ready_task is not None:
            await cancel_and_wait(self._ready_task)
        self._stop.set()
        if self._stop_maintenance is not None:
            await self._stop_maintenance()
            self._stop_maintenance = None
        if self._workers:
            _done, pending = await asyncio.wait(self._workers, timeout=self.settings.grace_period_s)
            if pending:
                self.service.shutdown.set()  # running separations stop at the next model pass
                if not await cancel_and_wait(pending, self.settings.stop_timeout_s):
                    log.error("worker loop(s) did not stop within the stop timeout")
        self._workers = []
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.redis.aclose(), self.settings.stop_timeout_s)


async def build_app(settings: SeparatorSettings, *, blobs: BlobStore | None = None) -> SeparatorApp:
    if settings.separator_torch_threads > 0:
        torch.set_num_threads(settings.separator_torch_threads)
    redis = connect_redis(settings.redis_url)
    queue = JobQueue.from_settings(settings, redis)
    service = SeparatorService(settings, queue, blobs or make_blob_store(settings), make_registry(settings))
    grpc_server = create_grpc_server(
        settings,
        [
            Service(
                name=separator_pb2.DESCRIPTOR.services_by_name["Separator"].full_name,
                add=separator_pb2_grpc.add_SeparatorServicer_to_server,
                servicer=SeparatorServicer(service),
            ),
            jobs_service(queue),
        ],
    )
    app = SeparatorApp(settings=settings, grpc=grpc_server, service=service, queue=queue, redis=redis)
    grpc_server.on_stop.append(app.close)
    grpc_server.checks.extend(app.health_checks())
    return app


async def create_server(settings: SeparatorSettings) -> tuple[GrpcServer, int]:
    """Build the server; it turns SERVING by itself once the model is loaded and workers run."""
    app = await build_app(settings)

    async def become_ready() -> None:
        try:
            await app.ready()
        except Exception:
            log.exception("separator could not get ready; staying NOT_SERVING")
            return
        await app.grpc.set_serving(True)

    app._ready_task = asyncio.create_task(become_ready(), name="separator-ready")
    return app.grpc, app.port
