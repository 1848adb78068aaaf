"""Protobuf messages from the backends, as the HTTP API's JSON bodies.

One exception: a task's status body is built straight from the job store's record
(:func:`task_json`), since the status poll is the gateway's most frequent request.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pydantic_core

from beatflow.common.audioformat import BY_CONTENT_TYPE
from beatflow.common.jobs import JobRecord
from beatflow.gateway import schemas
from beatflow.v1 import jobs_pb2, separator_pb2, vcs_pb2

DOWNLOAD_PREFIX = "/api/audio/download/"

_ROLE: dict[vcs_pb2.Role, schemas.RoleName] = {
    vcs_pb2.ROLE_READ: "read",
    vcs_pb2.ROLE_WRITE: "write",
    vcs_pb2.ROLE_OWNER: "owner",
}
ROLE_VALUE = {v: k for k, v in _ROLE.items()}
_CHANGE: dict[int, schemas.ChangeName] = {
    vcs_pb2.CHANGE_KIND_ADDED: "added",
    vcs_pb2.CHANGE_KIND_REMOVED: "removed",
    vcs_pb2.CHANGE_KIND_CHANGED: "changed",
    vcs_pb2.CHANGE_KIND_UNCHANGED: "unchanged",
}
_STATE: dict[int, schemas.TaskStatus] = {
    jobs_pb2.JOB_STATE_QUEUED: "queued",
    jobs_pb2.JOB_STATE_RUNNING: "running",
    jobs_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    jobs_pb2.JOB_STATE_FAILED: "failed",
    jobs_pb2.JOB_STATE_CANCELLED: "cancelled",
    jobs_pb2.JOB_STATE_DEAD: "dead",
}
TERMINAL = {
    jobs_pb2.JOB_STATE_SUCCEEDED,
    jobs_pb2.JOB_STATE_FAILED,
    jobs_pb2.JOB_STATE_CANCELLED,
    jobs_pb2.JOB_STATE_DEAD,
}


def visibility(value: str | None) -> vcs_pb2.Visibility:
    return vcs_pb2.VISIBILITY_PUBLIC if value == "public" else vcs_pb2.VISIBILITY_PRIVATE


def _visibility_name(value: int) -> schemas.Visibility:
    return "public" if value == vcs_pb2.VISIBILITY_PUBLIC else "private"


def extension_for(content_type: str) -> str:
    kind = BY_CONTENT_TYPE.get(content_type.split(";")[0].strip().lower())
    return kind.extension if kind else "bin"


def filename(blob_key: str, content_type: str = "audio/wav") -> str:
    return f"{blob_key}.{extension_for(content_type)}"


def download_url(blob_key: str, content_type: str = "audio/wav") -> str:
    return DOWNLOAD_PREFIX + filename(blob_key, content_type)


_SLUG_MAX = 48


def slug(text: str) -> str:
    """Lowercase ASCII words joined by '-' ("Upbeat électro, 128!" -> "upbeat-electro-128")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:_SLUG_MAX].rstrip("-")


def human_filename(label: str, blob_key: str, content_type: str = "audio/wav") -> str:
    """A download name people can read: "<label slug>-<short id>.<ext>" ("drums-1a2b3c4d.wav").

    A label that is already such a name (a ``download_name`` passed back) keeps its form.
    """
    extension = extension_for(content_type)
    label = label.removesuffix(f"-{blob_key[:8]}.{extension}")
    return f"{slug(label) or 'audio'}-{blob_key[:8]}.{extension}"


def user(msg: vcs_pb2.User) -> schemas.UserOut:
    return schemas.UserOut(id=msg.id, username=msg.username, created_at=msg.created_at)


def repository(msg: vcs_pb2.Repository) -> schemas.RepositoryOut:
    return schemas.RepositoryOut(
        id=msg.id,
        owner_id=msg.owner_id,
        owner_username=msg.owner_username,
        name=msg.name,
        description=msg.description,
        visibility=_visibility_name(msg.visibility),
        default_branch=msg.default_branch,
        forked_from_id=msg.forked_from_id or None,
        created_at=msg.created_at,
        role=_ROLE.get(msg.role),
    )


def collaborator(msg: vcs_pb2.Collaborator) -> schemas.CollaboratorOut:
    return schemas.CollaboratorOut(user_id=msg.user_id, username=msg.username, role=_ROLE.get(msg.role))


def _json_or_none(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}


def stem(msg: vcs_pb2.Stem) -> schemas.StemOut:
    content_type = msg.content_type or "audio/wav"
    return schemas.StemOut(
        name=msg.name,
        blob_key=msg.blob_key,
        content_type=content_type,
        size_bytes=msg.size_bytes,
        duration_s=msg.duration_s,
        download_url=download_url(msg.blob_key, content_type),
        download_name=human_filename(msg.name, msg.blob_key, content_type),
    )


def commit(msg: vcs_pb2.Commit) -> schemas.CommitOut:
    md = msg.metadata
    return schemas.CommitOut(
        id=msg.id,
        repo_id=msg.repo_id,
        parent_ids=list(msg.parent_ids),
        author_id=msg.author_id,
        author_username=msg.author_username,
        message=msg.message,
        timestamp=msg.timestamp,
        stems=[stem(s) for s in msg.stems],
        mixdown_blob=msg.mixdown_blob or None,
        mixdown_url=download_url(msg.mixdown_blob) if msg.mixdown_blob else None,
        metadata=schemas.CommitMetadataOut(
            bpm=md.bpm if md.HasField("bpm") else None,
            key=md.key,
            duration_s=md.duration_s if md.HasField("duration_s") else None,
            sample_rate=md.sample_rate if md.HasField("sample_rate") else None,
            generation=_json_or_none(md.generation_json),
        ),
    )


def ref(msg: vcs_pb2.Ref) -> schemas.RefOut:
    return schemas.RefOut(name=msg.name, commit_id=msg.commit_id, is_tag=msg.is_tag, message=msg.message)


def diff(msg: vcs_pb2.DiffResponse, base: str, head: str) -> schemas.DiffOut:
    return schemas.DiffOut(
        base=base,
        head=head,
        stems=[
            schemas.StemChangeOut(
                name=s.name,
                change=_CHANGE.get(s.kind, "unspecified"),
                base_blob=s.base_blob or None,
                head_blob=s.head_blob or None,
            )
            for s in msg.stems
        ],
        metadata=[
            schemas.MetadataChangeOut(field=m.field, base_value=m.base_value, head_value=m.head_value)
            for m in msg.metadata
        ],
    )


def conflicts(items: Any) -> list[schemas.ConflictOut]:
    return [
        schemas.ConflictOut(
            name=c.name, base_blob=c.base_blob or None, ours_blob=c.ours_blob or None, theirs_blob=c.theirs_blob or None
        )
        for c in items
    ]


def merge(msg: vcs_pb2.MergeResponse) -> schemas.MergeOut:
    return schemas.MergeOut(
        merged=msg.merged,
        fast_forward=msg.fast_forward,
        up_to_date=msg.up_to_date,
        commit=commit(msg.commit) if msg.HasField("commit") and msg.commit.id else None,
        conflicts=conflicts(msg.conflicts),
        merge_bases=list(msg.merge_bases),
    )


def analysis(msg: separator_pb2.Analysis) -> schemas.AnalysisOut:
    return schemas.AnalysisOut(
        bpm=msg.bpm,
        bpm_confidence=msg.bpm_confidence,
        key_tonic=msg.key_tonic,
        key_mode=msg.key_mode,
        key=f"{msg.key_tonic} {msg.key_mode}".strip(),
        key_confidence=msg.key_confidence,
        duration_s=msg.duration_s,
        sample_rate=msg.sample_rate,
        channels=msg.channels,
        loudness_lufs=msg.loudness_lufs,
        peak_dbfs=msg.peak_dbfs,
    )


def task_status(state: int) -> schemas.TaskStatus:
    return _STATE.get(state, "unspecified")


def _content_type_for_output(name: str, job_result: dict[str, Any] | None, request: dict[str, Any] | None) -> str:
    fmt = ""
    if job_result:
        fmt = str(job_result.get("format", "") or "")
    if not fmt and request:
        raw = request.get("format", "")
        fmt = str(raw) if raw is not None else ""
    fmt = fmt.lower().removeprefix("audio_format_")
    return {"flac": "audio/flac", "mp3": "audio/mpeg", "2": "audio/flac", "3": "audio/mpeg"}.get(fmt, "audio/wav")


def _task_file_fields(
    blobs: Any, result: dict[str, Any] | None = None, request: dict[str, Any] | None = None
) -> dict[str, dict[str, str]]:
    """Each output's ``TaskFile`` fields, in the schema's order."""
    files = {}
    prompt = str((request or {}).get("prompt", "") or "")
    for name, key in dict(blobs).items():
        content_type = _content_type_for_output(name, result, request)
        label = name if not prompt or not name.startswith("audio") else prompt + name[len("audio") :]
        files[name] = {
            "blob_key": key,
            "filename": filename(key, content_type),
            "download_url": download_url(key, content_type),
            "download_name": human_filename(label, key, content_type),
        }
    return files


def task_files(
    blobs: Any, result: dict[str, Any] | None = None, request: dict[str, Any] | None = None
) -> dict[str, schemas.TaskFile]:
    return {name: schemas.TaskFile(**fields) for name, fields in _task_file_fields(blobs, result, request).items()}


def task(msg: jobs_pb2.Job) -> schemas.TaskOut:
    result = _json_or_none(msg.result_json)
    request = _json_or_none(msg.request_json)
    return schemas.TaskOut(
        task_id=msg.id,
        kind=msg.kind,
        status=task_status(msg.state),
        progress=msg.progress,
        stage=msg.stage,
        queue_position=msg.queue_position,
        error=msg.error or None,
        attempts=msg.attempts,
        created_at=msg.created_at,
        started_at=msg.started_at or None,
        finished_at=msg.finished_at or None,
        files=task_files(msg.result_blobs, result, request),
        result=result,
        max_attempts=msg.max_attempts,
        retry_at=msg.retry_at or None,
        retry_delay_s=msg.retry_delay_s or None,
        deadline_at=msg.deadline_at or None,
        cancel_reason=msg.cancel_reason or None,  # type: ignore[arg-type]
        eta_s=msg.eta_s if msg.eta_s >= 0 else None,
        eta_basis=msg.eta_basis,
        webhook_url=msg.webhook_url or None,
        webhook_events=list(msg.webhook_events),
    )


def task_json(record: JobRecord) -> bytes:
    """The ``TaskOut`` body of a job store record, as JSON: what ``task(record.to_proto())`` serialises to.

    Built field by field in the schema's order and serialised by pydantic's own JSON
    encoder (the same number and text forms, NaN and infinity as null), without the
    protobuf message, the model's validation or its serialiser in between: the status
    poll is the gateway's most frequent request. Files come in the order the worker
    stored them (a protobuf map's order is its own). ``tests/test_task_body.py``
    holds the two forms equal.
    """
    body = {
        "task_id": record.id,
        "kind": record.kind,
        "status": _STATE.get(record.state, "unspecified"),
        "progress": record.progress,
        "stage": record.stage,
        "queue_position": record.queue_position,
        "error": record.error or None,
        "attempts": record.attempts,
        "created_at": record.created_at,
        "started_at": record.started_at or None,
        "finished_at": record.finished_at or None,
        "files": _task_file_fields(record.result_blobs, record.result, record.request),
        "result": record.result,
        "max_attempts": record.max_attempts,
        "retry_at": record.retry_at or None,
        "retry_delay_s": record.retry_delay_s or None,
        "deadline_at": record.deadline_at or None,
        "cancel_reason": record.cancel_reason or None,
        "eta_s": record.eta_s if record.eta_s >= 0 else None,
        "eta_basis": record.eta_basis,
        "webhook_url": record.webhook_url or None,
        "webhook_events": record.webhook_events,
    }
    return pydantic_core.to_json(body, inf_nan_mode="null")


def task_event(msg: jobs_pb2.JobEvent, job: jobs_pb2.Job | None = None) -> schemas.TaskEventOut:
    result = _json_or_none(job.result_json) if job is not None else None
    request = _json_or_none(job.request_json) if job is not None else None
    return schemas.TaskEventOut(
        event_id=msg.event_id,
        task_id=msg.job_id,
        status=task_status(msg.state),
        progress=msg.progress,
        stage=msg.stage,
        error=msg.error or None,
        files=task_files(msg.result_blobs, result, request),
        chunk_blob=msg.chunk_blob or None,
        timestamp=msg.timestamp,
        queue_position=msg.queue_position,
        eta_s=msg.eta_s if msg.eta_s >= 0 else None,
        attempts=msg.attempts,
        retry_at=msg.retry_at or None,
    )


def webhook_delivery(msg: jobs_pb2.WebhookDelivery) -> schemas.WebhookDeliveryOut:
    return schemas.WebhookDeliveryOut(
        event_id=msg.event_id,
        task_id=msg.job_id,
        type=msg.type,
        url=msg.url,
        attempts=msg.attempts,
        last_error=msg.last_error,
        created_at=msg.created_at,
        status=msg.status,
    )
