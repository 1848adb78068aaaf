"""``beatflow.v1.Jobs``: read, watch and cancel any job of the queue; webhook secrets and dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from beatflow.common.errors import InvalidArgument
from beatflow.common.grpcserver import Service
from beatflow.common.jobs.queue import JobQueue
from beatflow.common.jobs.webhooks import WebhookStore
from beatflow.v1 import jobs_pb2, jobs_pb2_grpc


def _job_id(value: str) -> str:
    if not value:
        raise InvalidArgument("job_id is required")
    return value


def job_options_from_proto(options: jobs_pb2.JobOptions) -> dict[str, Any]:
    """``JobQueue.submit`` keyword arguments from a request's ``JobOptions``."""
    return {
        "deadline_s": options.deadline_s or None,
        "webhook_url": options.webhook_url,
        "webhook_events": list(options.webhook_events),
    }


def _owner(value: str) -> str:
    if not value:
        raise InvalidArgument("owner is required")
    return value


class JobsServicer(jobs_pb2_grpc.JobsServicer):
    """Every service with jobs registers this; any replica can answer for any job."""

    def __init__(self, queue: JobQueue, webhooks: WebhookStore | None = None) -> None:
        self.queue = queue
        self.webhooks = webhooks or WebhookStore(
            queue.redis, prefix=queue.prefix, allow_private=queue.webhook_allow_private
        )

    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        return (await self.queue.get(_job_id(request.job_id))).to_proto()

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.JobEvent]:
        async for event in self.queue.events(_job_id(request.job_id), after=request.after_event_id or "0"):
            yield event.to_proto()

    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        return (await self.queue.cancel(_job_id(request.job_id))).to_proto()

    async def GetWebhookSecret(
        self, request: jobs_pb2.WebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.WebhookSecret:
        secret = await self.webhooks.secret(_owner(request.owner), rotate=request.rotate)
        return jobs_pb2.WebhookSecret(secret=secret)

    async def ListWebhookDeadLetters(
        self, request: jobs_pb2.ListWebhookDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.WebhookDeliveryList:
        limit = request.limit if 0 < request.limit <= 1000 else 100
        dead = await self.webhooks.dead_letters(_owner(request.owner), limit)
        return jobs_pb2.WebhookDeliveryList(deliveries=[d.to_proto() for d in dead])

    async def RedeliverWebhook(
        self, request: jobs_pb2.RedeliverWebhookRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.WebhookDelivery:
        if not request.event_id:
            raise InvalidArgument("event_id is required")
        delivery = await self.webhooks.redeliver(_owner(request.owner), request.event_id)
        return delivery.to_proto()  # type: ignore[no-any-return]


def jobs_service(queue: JobQueue, webhooks: WebhookStore | None = None) -> Service:
    """The ``Service`` entry for ``create_grpc_server`` that registers the Jobs servicer."""
    return Service(
        name=jobs_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name,
        add=jobs_pb2_grpc.add_JobsServicer_to_server,
        servicer=JobsServicer(queue, webhooks),
    )
