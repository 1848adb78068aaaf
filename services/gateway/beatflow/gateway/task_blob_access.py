"""Who may touch which task and blob, and whether a blob is intact.

Tasks belong to the user who submitted them (the job's ``owner``); anyone
else gets 404, as if the task did not exist. Blobs are readable by whoever
vcs says (uploader, or a reader of a repository holding them); the outputs of
a finished task were registered to its owner with vcs by the worker that
completed it (``beatflow.common.jobs.outputs``), so they can be downloaded
and committed like uploads, and no read here registers anything.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from beatflow.common.errors import DataLoss, NotFound
from beatflow.common.jobs import JobQueue, JobRecord
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.deps import GatewayState
from beatflow.gateway.httperrors import ApiError
from beatflow.v1 import jobs_pb2, vcs_pb2

log = logging.getLogger(__name__)

CORRUPT_RESPONSE: dict[int | str, dict[str, Any]] = {
    502: {"description": "Stored audio is corrupted (fails its SHA-256); code DATA_LOSS"}
}


def corrupt_blob(key: str) -> ApiError:
    log.error("blob %s failed verification: refused", key)
    return ApiError(502, f"audio {key} is corrupted in storage; upload the original again", code="DATA_LOSS")


async def verify_blob(state: GatewayState, key: str) -> None:
    """Read the whole blob and check its hash: ApiError 502 (DATA_LOSS) if it fails, 404 if it is gone."""
    try:
        await asyncio.to_thread(state.store.verify, key)
    except DataLoss:
        raise corrupt_blob(key) from None
    except NotFound:
        raise ApiError(404, f"audio {key} not found") from None


async def owned_job(state: GatewayState, user: Principal, task_id: str) -> jobs_pb2.Job:
    try:
        job = await state.backends.get_job(task_id)
    except NotFound:
        raise ApiError(404, "task not found") from None
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise ApiError(404, "task not found") from None
        raise
    if not job.owner or job.owner != user.user_id:
        raise ApiError(404, "task not found")
    return job


async def owned_record(jobs: JobQueue, user: Principal, task_id: str) -> JobRecord:
    """The caller's job as the job store has it (the status poll: no gRPC, no protobuf); 404 otherwise."""
    record = await jobs.find(task_id)
    if record is None or not record.owner or record.owner != user.user_id:
        raise ApiError(404, "task not found")
    return record


async def require_readable_blob(state: GatewayState, user: Principal, blob_key: str) -> None:
    reply = await state.backends.vcs.CanReadBlob(
        vcs_pb2.CanReadBlobRequest(actor=user.user_id, blob_key=blob_key), timeout=state.timeout
    )
    if not reply.allowed:
        raise ApiError(404, f"audio {blob_key} not found")
