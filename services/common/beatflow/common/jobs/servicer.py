"""``beatflow.v1.Jobs``: read, watch and cancel any job of the queue over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from beatflow.common.errors import InvalidArgument
from beatflow.common.grpcserver import Service
from beatflow.common.jobs.queue import JobQueue
from beatflow.v1 import jobs_pb2, jobs_pb2_grpc


def _job_id(value: str) -> str:
    if not value:
        raise InvalidArgument("job_id is required")
    return value


class JobsServicer(jobs_pb2_grpc.JobsServicer):
    """Every service with jobs registers this; any replica can answer for any job."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        return (await self.queue.get(_job_id(request.job_id))).to_proto()

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.JobEvent]:
        async for event in self.queue.events(_job_id(request.job_id), after=request.after_event_id or "0"):
            yield event.to_proto()

    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        return (await self.queue.cancel(_job_id(request.job_id))).to_proto()


def jobs_service(queue: JobQueue) -> Service:
    """The ``Service`` entry for ``create_grpc_server`` that registers the Jobs servicer."""
    return Service(
        name=jobs_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name,
        add=jobs_pb2_grpc.add_JobsServicer_to_server,
        servicer=JobsServicer(queue),
    )
