"""gRPC channels and stubs for the three backend services, and their health.

"Backend" means one of the gRPC services behind the gateway (generator,
separator, vcs), here and everywhere else in the project.

Jobs live in one Redis queue and both generator and separator register the
Jobs service, so either can answer for any job: calls go to the generator
and fall back to the separator when the generator is unreachable. Reading a
job (``get_job``, the most frequent call: every task status poll) is the one
exception: it runs the queue's read-only status script on that Redis itself,
the very read the Jobs service would make, without the gRPC round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beatflow.common import grpctls
from beatflow.common.errors import NotFound
from beatflow.common.jobs import JobQueue
from beatflow.gateway.config import GatewaySettings
from beatflow.v1 import (
    generator_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    separator_pb2_grpc,
    vcs_pb2_grpc,
)

# Reconnecting: gRPC's default backoff grows to 120 s (about 9 s after a short outage), so
# requests kept failing fast long after the backend was SERVING again. Capped at 1 s, a
# channel in TRANSIENT_FAILURE tries again at least every second, and the gateway recovers
# within about a second of the backend's return, while a backend that stays down costs a
# connection attempt per second per channel.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.enable_retries", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 1_000),  # also each attempt's connect timeout (handshake included)
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


@dataclass
class Backend:
    name: str
    addr: str
    channel: grpc.aio.Channel
    health: health_pb2_grpc.HealthStub = field(init=False)

    def __post_init__(self) -> None:
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def check(self, timeout_s: float = 2.0) -> str:
        """The backend's overall health status name, or UNREACHABLE."""
        try:
            reply = await self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            return (
                "UNREACHABLE"
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                else exc.code().name
            )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


class Backends:
    """One channel per backend, shared by all requests of this gateway process."""

    def __init__(
        self,
        settings: GatewaySettings,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        *,
        jobs: JobQueue | None = None,
    ) -> None:
        # the shared job store, for reads of a job (None: ask the Jobs service over gRPC)
        self.jobs = jobs
        self.timeout = settings.rpc_timeout_s
        self._settings = settings
        self._interceptors = list(interceptors)
        self.generator_backend = Backend("generator", settings.generator_addr, self._channel(settings.generator_addr))
        self.separator_backend = Backend("separator", settings.separator_addr, self._channel(settings.separator_addr))
        self.vcs_backend = Backend("vcs", settings.vcs_addr, self._channel(settings.vcs_addr))
        self.generator = generator_pb2_grpc.GeneratorStub(self.generator_backend.channel)
        self.separator = separator_pb2_grpc.SeparatorStub(self.separator_backend.channel)
        self.vcs = vcs_pb2_grpc.VcsStub(self.vcs_backend.channel)
        self._jobs = [
            jobs_pb2_grpc.JobsStub(self.generator_backend.channel),
            jobs_pb2_grpc.JobsStub(self.separator_backend.channel),
        ]

    def _channel(self, addr: str) -> grpc.aio.Channel:
        return grpctls.aio_channel(addr, self._settings, _CHANNEL_OPTIONS, interceptors=self._interceptors)

    @property
    def all(self) -> list[Backend]:
        return [self.vcs_backend, self.generator_backend, self.separator_backend]

    async def health(self) -> dict[str, str]:
        statuses = await asyncio.gather(*(b.check() for b in self.all))
        return {b.name: s for b, s in zip(self.all, statuses, strict=True)}

    async def close(self) -> None:
        for backend in self.all:
            await backend.channel.close()

    async def get_job(self, job_id: str) -> jobs_pb2.Job:
        """The job with its live queue position and ETA; NotFound (or gRPC NOT_FOUND) when unknown."""
        if self.jobs is not None:
            record = await self.jobs.find(job_id)
            if record is None:
                raise NotFound(f"job {job_id!r} not found")
            return record.to_proto()
        reply: jobs_pb2.Job = await self._jobs_call("GetJob", jobs_pb2.GetJobRequest(job_id=job_id))
        return reply

    async def cancel_job(self, job_id: str) -> jobs_pb2.Job:
        reply: jobs_pb2.Job = await self._jobs_call("CancelJob", jobs_pb2.CancelJobRequest(job_id=job_id))
        return reply

    async def webhook_secret(self, owner: str, *, rotate: bool = False) -> str:
        request = jobs_pb2.WebhookSecretRequest(owner=owner, rotate=rotate)
        reply: jobs_pb2.WebhookSecret = await self._jobs_call("GetWebhookSecret", request)
        return reply.secret

    async def webhook_dead_letters(self, owner: str, limit: int = 100) -> jobs_pb2.WebhookDeliveryList:
        request = jobs_pb2.ListWebhookDeadLettersRequest(owner=owner, limit=limit)
        reply: jobs_pb2.WebhookDeliveryList = await self._jobs_call("ListWebhookDeadLetters", request)
        return reply

    async def redeliver_webhook(self, owner: str, event_id: str) -> jobs_pb2.WebhookDelivery:
        request = jobs_pb2.RedeliverWebhookRequest(owner=owner, event_id=event_id)
        reply: jobs_pb2.WebhookDelivery = await self._jobs_call("RedeliverWebhook", request)
        return reply

    async def _jobs_call(self, method: str, request: object) -> Any:
        last: grpc.aio.AioRpcError | None = None
        for stub in self._jobs:
            try:
                return await getattr(stub, method)(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED):
                    raise
                last = exc
        assert last is not None
        raise last

    async def watch_job(self, job_id: str, after_event_id: str = "") -> AsyncIterator[jobs_pb2.JobEvent]:
        """The job's events from the start (or after ``after_event_id``) until its terminal event.

        If the serving backend goes away mid-stream, the watch resumes on the
        other one after the last event seen, so no event is lost or repeated.
        """
        last_id = after_event_id
        failures = 0
        while True:
            stub = self._jobs[failures % len(self._jobs)]
            try:
                call = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id, after_event_id=last_id))
                async for event in call:
                    failures = 0
                    if event.event_id:
                        last_id = event.event_id
                    yield event
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED):
                    raise
                failures += 1
                if failures >= 2 * len(self._jobs):
                    raise
                await asyncio.sleep(0.2 * failures)
