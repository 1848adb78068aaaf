"""AI work as tasks: generation, hum-to-beat, stem separation, analysis; status and cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from beatflow.common.jobs import JobQueue
from beatflow.gateway import convert, schemas
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.deps import (
    CancelAfterHeader,
    GatewayState,
    IdempotencyHeader,
    State,
    User,
    idempotency_key,
    parse_cancel_after,
)
from beatflow.gateway.httperrors import ApiError
from beatflow.gateway.task_blob_access import CORRUPT_RESPONSE, owned_job, owned_record, require_readable_blob
from beatflow.v1 import generator_pb2, jobs_pb2, separator_pb2

router = APIRouter(prefix="/api/ai", tags=["ai"])

TASK_ID_PATTERN = r"^[A-Za-z0-9_\-.:]+$"
TASK_ID_MAX = 128
TaskId = Annotated[str, Path(min_length=1, max_length=TASK_ID_MAX, pattern=TASK_ID_PATTERN)]

_FORMATS = {
    "wav": generator_pb2.AUDIO_FORMAT_WAV,
    "flac": generator_pb2.AUDIO_FORMAT_FLAC,
    "mp3": generator_pb2.AUDIO_FORMAT_MP3,
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such task or audio, or not yours"}}


# First of the router's routes: FastAPI tries them in order, and this is the most frequent request.
@router.get(
    "/tasks/{task_id}",
    response_model=schemas.TaskOut,
    responses=_NOT_FOUND,
    summary="A task's state, progress and results",
)
async def get_task(task_id: TaskId, request: Request, user: User) -> Response | schemas.TaskOut:
    # the most frequent request (every poll): the body straight from the job store's record,
    # in the schema's exact JSON (convert.task_json), without the model's validation in between;
    # the state from the request, not as a dependency (FastAPI solves each one per request)
    # (the app's fast path, beatflow.gateway.fastpath, answers most of these requests with task_status)
    state: GatewayState = request.app.state.gateway
    jobs = state.backends.jobs
    if jobs is None:  # a gateway without its own job store: the Jobs service's answer
        return await _task(state, user, task_id)
    return await task_status(jobs, user, task_id)


async def task_status(jobs: JobQueue, user: Principal, task_id: str) -> Response:
    """``GET /tasks/{id}``'s answer from the gateway's own job store: the caller's task, or ApiError 404."""
    record = await owned_record(jobs, user, task_id)
    return Response(convert.task_json(record), media_type="application/json")


def _sampling(body: schemas.GenerateCreate | schemas.HumToBeatCreate) -> generator_pb2.SamplingOptions:
    sampling = generator_pb2.SamplingOptions(greedy=getattr(body, "greedy", False))
    for name in ("top_k", "top_p", "temperature", "guidance_scale"):
        value = getattr(body, name, None)
        if value is not None:
            setattr(sampling, name, value)
    return sampling


def _job_options(body: schemas.TaskOptions, cancel_after: str | None) -> jobs_pb2.JobOptions:
    """Deadline (body field or Cancel-After header, the earlier wins) and webhook of a new task."""
    deadlines = [d for d in (body.deadline_s, parse_cancel_after(cancel_after)) if d is not None]
    return jobs_pb2.JobOptions(
        deadline_s=min(deadlines) if deadlines else 0.0,
        webhook_url=body.webhook_url or "",
        webhook_events=list(body.webhook_events or []),
    )


async def _submit_generation(state: State, user: User, request: generator_pb2.GenerateRequest) -> schemas.TaskOut:
    for blob in (request.melody_blob, request.prompt_audio_blob):
        if blob:
            await require_readable_blob(state, user, blob)
    job = await state.backends.generator.SubmitGeneration(request, timeout=state.timeout)
    return convert.task(job)


@router.post(
    "/generate",
    status_code=202,
    responses={**_NOT_FOUND, **CORRUPT_RESPONSE},
    summary="Generate music from a text prompt",
)
async def generate(
    body: schemas.GenerateCreate,
    state: State,
    user: User,
    key: IdempotencyHeader = None,
    cancel_after: CancelAfterHeader = "",
) -> schemas.TaskOut:
    hints = generator_pb2.MusicHints(mood=body.mood, genre=body.genre, key=body.key, instruments=body.instruments)
    if body.bpm is not None:
        hints.bpm = body.bpm
    request = generator_pb2.GenerateRequest(
        prompt=body.prompt,
        hints=hints,
        duration_s=body.duration,
        sampling=_sampling(body),
        num_variations=body.num_variations,
        format=_FORMATS[body.format],
        melody_blob=body.melody_blob or "",
        prompt_audio_blob=body.prompt_audio_blob or "",
        idempotency_key=idempotency_key(user, key, "generate"),
        owner=user.user_id,
        job_options=_job_options(body, cancel_after),
    )
    if body.seed is not None:
        request.seed = body.seed
    if body.conform is not None:
        request.conform = body.conform
    request.loop = body.loop
    return await _submit_generation(state, user, request)


@router.post(
    "/hum-to-beat",
    status_code=202,
    responses={**_NOT_FOUND, **CORRUPT_RESPONSE},
    summary="Generate music that follows a hummed melody",
)
async def hum_to_beat(
    body: schemas.HumToBeatCreate,
    state: State,
    user: User,
    key: IdempotencyHeader = None,
    cancel_after: CancelAfterHeader = "",
) -> schemas.TaskOut:
    hints = generator_pb2.MusicHints(mood=body.mood, genre=body.genre)
    if body.bpm is not None:
        hints.bpm = body.bpm
    request = generator_pb2.GenerateRequest(
        prompt=body.prompt,
        hints=hints,
        duration_s=body.duration,
        sampling=_sampling(body),
        num_variations=1,
        format=_FORMATS[body.format],
        melody_blob=body.melody_blob,
        idempotency_key=idempotency_key(user, key, "hum-to-beat"),
        owner=user.user_id,
        job_options=_job_options(body, cancel_after),
    )
    if body.seed is not None:
        request.seed = body.seed
    return await _submit_generation(state, user, request)


@router.post("/separate-stems", status_code=202, responses=_NOT_FOUND, summary="Split audio into stems")
async def separate_stems(
    body: schemas.SeparateCreate,
    state: State,
    user: User,
    key: IdempotencyHeader = None,
    cancel_after: CancelAfterHeader = "",
) -> schemas.TaskOut:
    await require_readable_blob(state, user, body.audio_blob)
    request = separator_pb2.SeparateRequest(
        audio_blob=body.audio_blob,
        model=body.model,
        two_stems=body.two_stems,
        shifts=body.shifts,
        format=_FORMATS[body.format],
        residual_stem=body.residual_stem,
        idempotency_key=idempotency_key(user, key, "separate-stems"),
        owner=user.user_id,
        job_options=_job_options(body, cancel_after),
    )
    if body.overlap is not None:
        request.overlap = body.overlap
    if body.segment_s is not None:
        request.segment_s = body.segment_s
    job = await state.backends.separator.SubmitSeparation(request, timeout=state.timeout)
    return convert.task(job)


@router.post("/analyze-audio", responses={**_NOT_FOUND, **CORRUPT_RESPONSE}, summary="Detect tempo, key and loudness")
async def analyze_audio(
    body: schemas.AnalyzeCreate,
    state: State,
    user: User,
    key: IdempotencyHeader = None,
    cancel_after: CancelAfterHeader = "",
) -> schemas.AnalyzeOut:
    await require_readable_blob(state, user, body.audio_blob)
    request = separator_pb2.AnalyzeRequest(
        audio_blob=body.audio_blob,
        idempotency_key=idempotency_key(user, key, "analyze-audio"),
        owner=user.user_id,
        job_options=_job_options(body, cancel_after),
    )
    if body.background:
        job = await state.backends.separator.SubmitAnalysis(request, timeout=state.timeout)
        return schemas.AnalyzeOut(analysis=None, task=convert.task(job))
    result = await state.backends.separator.AnalyzeAudio(request, timeout=state.timeout)
    return schemas.AnalyzeOut(analysis=convert.analysis(result), task=None)


async def _task(state: State, user: User, task_id: str) -> schemas.TaskOut:
    return convert.task(await owned_job(state, user, task_id))


_SEED_STATUS = {
    "unspecified": "pending",
    "queued": "pending",
    "running": "running",
    "succeeded": "success",
    "failed": "failure",
    "dead": "failure",
    "cancelled": "cancelled",
}


def seed_shape(task: schemas.TaskOut) -> schemas.SeedTaskOut:
    """The seed guide's polling answer: ``status: success`` and a ``result`` naming the audio."""
    result = task.result
    if task.status == "succeeded":
        result = dict(result or {})
        first = task.files.get("audio") or next(iter(task.files.values()), None)
        if first is not None:
            result.setdefault("audio_url", first.download_url)
            result.setdefault("filename", first.filename)
        result["files"] = {name: f.model_dump() for name, f in task.files.items()}
    body = task.model_dump()
    body.update(status=_SEED_STATUS.get(task.status, "pending"), state=task.status, result=result)
    return schemas.SeedTaskOut(**body)


@router.get(
    "/status/{task_id}",
    responses=_NOT_FOUND,
    summary="A task's status in the seed guide's shape ('success' and 'result'), with the richer fields",
)
async def status(task_id: TaskId, state: State, user: User) -> schemas.SeedTaskOut:
    """``status`` is pending, running, success, failure or cancelled; ``state`` is the precise state."""
    return seed_shape(await _task(state, user, task_id))


@router.post("/tasks/{task_id}/cancel", responses=_NOT_FOUND, summary="Cancel a queued or running task")
async def cancel_task(task_id: TaskId, state: State, user: User) -> schemas.TaskOut:
    job = await owned_job(state, user, task_id)
    if job.state in convert.TERMINAL:
        return convert.task(job)
    job = await state.backends.cancel_job(task_id)
    return convert.task(job)


def require_succeeded(job: jobs_pb2.Job) -> None:
    if job.state != jobs_pb2.JOB_STATE_SUCCEEDED:
        raise ApiError(409, f"task {job.id} is {convert.task_status(job.state)}, not succeeded")
