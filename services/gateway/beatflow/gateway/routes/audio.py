"""Audio in and out: streamed uploads into the blob store, checked downloads with ranges.

Downloads never hand out bytes that fail verification (see the gateway README):
answers up to ``verify_before_send_bytes`` are verified whole before the status
line goes out (a corrupt blob is a 502 with ``code: DATA_LOSS``); longer ones are
streamed chunk by chunk, each chunk checked against its digest before it is
sent, and a failed check aborts the connection short of its ``Content-Length``,
so no client mistakes it for a complete download. Every answer names the
content hash in ``ETag``, ``Repr-Digest`` and ``Digest`` for the client to check.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from beatflow.common.audioformat import BY_CONTENT_TYPE, AudioHeader, UnreadableAudio, read_header, sniff
from beatflow.common.errors import DataLoss, NotFound
from beatflow.gateway import convert, schemas
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.deps import State, User, current_user_or_query_token
from beatflow.gateway.httperrors import ApiError
from beatflow.gateway.task_blob_access import CORRUPT_RESPONSE, corrupt_blob, require_readable_blob, verify_blob
from beatflow.gateway.upload_spool import MULTIPART_OVERHEAD, spool_upload
from beatflow.v1 import vcs_pb2

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/audio", tags=["audio"])

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "audio/wav": {"schema": {"type": "string", "format": "binary"}},
        "audio/flac": {"schema": {"type": "string", "format": "binary"}},
        "audio/mpeg": {"schema": {"type": "string", "format": "binary"}},
        "audio/ogg": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _inspect(path: str) -> AudioHeader:
    """Type from magic bytes and duration from the header; nothing is decoded."""
    with open(path, "rb") as fh:
        if sniff(fh.read(64 * 1024)) is None:
            raise ApiError(415, "not WAV, FLAC, MP3 or Ogg audio (judged by content, not name)")
        try:
            return read_header(fh)
        except UnreadableAudio as exc:
            raise ApiError(400, f"unreadable audio: {exc}") from None


@router.post(
    "/upload",
    status_code=201,
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        413: {"description": "Larger or longer than the limits"},
        415: {"description": "Not WAV, FLAC, MP3 or Ogg audio"},
        400: {"description": "Malformed body or unreadable audio header"},
    },
    summary="Upload audio (raw body or multipart 'file'); stored by content hash",
    max_body_size=sys.maxsize,  # not the app's JSON cap: max_upload_bytes is enforced while streaming
)
async def upload(request: Request, state: State, user: User) -> schemas.UploadOut:
    settings = state.settings
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + MULTIPART_OVERHEAD:
        raise ApiError(413, f"upload larger than the limit of {settings.max_upload_bytes} bytes")
    spooled = await spool_upload(request.headers.get("content-type", ""), request.stream(), settings.max_upload_bytes)
    try:
        header = await asyncio.to_thread(_inspect, spooled.path)
        if header.duration_s > settings.max_upload_duration_s:
            raise ApiError(
                413, f"audio is {header.duration_s:.1f}s long; the limit is {settings.max_upload_duration_s:.0f}s"
            )
        if header.duration_s <= 0:
            raise ApiError(400, "audio holds no samples")
        content_type = header.type.content_type
        key = await asyncio.to_thread(state.store.put_file, spooled.path, content_type)
    finally:
        os.unlink(spooled.path)
    if key != spooled.sha256:
        raise ApiError(503, "the blob store changed the upload in transit; try again")
    await state.backends.vcs.RegisterBlob(
        vcs_pb2.RegisterBlobRequest(
            actor=user.user_id, blob_key=key, content_type=content_type, size_bytes=spooled.size
        ),
        timeout=state.timeout,
    )
    return schemas.UploadOut(
        blob_key=key,
        filename=convert.filename(key, content_type),
        content_type=content_type,
        size_bytes=spooled.size,
        duration_s=header.duration_s,
        sample_rate=header.sample_rate,
        channels=header.channels,
        download_url=convert.download_url(key, content_type),
    )


_EXISTS_CONCURRENCY = 16


@router.post(
    "/exists",
    summary="Which of these content hashes the caller need not upload",
    responses={422: {"description": "Not a list of 1 to 1000 blob keys"}},
)
async def exists(body: schemas.BlobsExistIn, state: State, user: User) -> schemas.BlobsExistOut:
    """Sort blob keys into present (stored and readable by the caller) and missing.

    A blob someone else uploaded privately counts as missing: saying it exists
    would tell the caller what audio others hold. Uploading it again costs
    bandwidth only (the store keeps one copy by content) and makes it theirs.
    """
    keys = list(dict.fromkeys(body.blob_keys))
    gate = asyncio.Semaphore(_EXISTS_CONCURRENCY)

    async def present(key: str) -> bool:
        async with gate:
            reply = await state.backends.vcs.CanReadBlob(
                vcs_pb2.CanReadBlobRequest(actor=user.user_id, blob_key=key), timeout=state.timeout
            )
            if not reply.allowed:
                return False
            try:
                await asyncio.to_thread(state.store.stat, key)
            except NotFound:
                return False
            return True

    found = await asyncio.gather(*(present(k) for k in keys))
    return schemas.BlobsExistOut(
        present=[k for k, ok in zip(keys, found, strict=True) if ok],
        missing=[k for k, ok in zip(keys, found, strict=True) if not ok],
    )


_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """The (start, end inclusive) of a single-range ``Range`` header; None to send it all.

    Raises ApiError 416 when the range lies outside the blob.
    """
    match = _RANGE_RE.match(value.strip().replace(" ", ""))
    if not match:
        return None  # multiple ranges or another unit: answer with the whole body
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise ApiError(416, "empty suffix range")
        return max(0, size - suffix), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise ApiError(416, f"range outside the {size} bytes")
    return start, end


def digest_headers(key: str) -> dict[str, str]:
    """The content hash as HTTP states it: ETag, RFC 9530 ``Repr-Digest`` and RFC 3230 ``Digest``."""
    b64 = base64.b64encode(bytes.fromhex(key)).decode("ascii")
    return {"ETag": f'"{key}"', "Repr-Digest": f"sha-256=:{b64}:", "Digest": f"sha-256={b64}"}


def _abort_on_corruption(key: str, pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Pass verified pieces on; on DataLoss log it and raise, which aborts the connection mid-body."""
    try:
        yield from pieces
    except DataLoss:
        log.error("blob %s failed verification mid-download: connection aborted", key)
        raise


def _read_all(pieces: Iterator[bytes]) -> bytes:
    return b"".join(pieces)


async def _verified_body(state: State, key: str, pieces: Iterator[bytes], length: int) -> bytes | Iterator[bytes]:
    """Small answers: the verified bytes (DataLoss -> 502 before anything is sent); large: a checked stream."""
    if length <= state.settings.verify_before_send_bytes:
        try:
            return await asyncio.to_thread(_read_all, pieces)
        except DataLoss:
            raise corrupt_blob(key) from None
    return _abort_on_corruption(key, pieces)


async def _verify_whole(state: State, key: str) -> None:
    try:
        await asyncio.to_thread(state.store.verify, key)
    except DataLoss:
        log.error("blob %s failed verification: download refused", key)
        raise ApiError(502, f"audio {key} is corrupted in storage", code="DATA_LOSS") from None


FileName = Annotated[str, Path(max_length=300, description="<blob key>[.<extension>]")]
_FILENAME_RE = re.compile(r"^([0-9a-f]{64})(\.[a-z0-9]{1,5})?$")
DownloadName = Annotated[
    str | None,
    Query(
        max_length=200,
        description="A name to offer for the file (slugged, with the short id and extension added): "
        "'drums' gives drums-1a2b3c4d.wav. Default: audio-<short id>.<ext>",
    ),
]


def content_disposition(disposition: str, name: str) -> str:
    """The header for a file name that is already plain ASCII (slugged)."""
    return f'{disposition}; filename="{name}"'


@router.head("/download/{filename}", response_class=Response, include_in_schema=False)
@router.get(
    "/download/{filename}",
    response_class=Response,
    responses={
        200: {
            "content": {"audio/wav": {}, "audio/flac": {}, "audio/mpeg": {}, "audio/ogg": {}},
            "description": "The audio",
        },
        206: {"description": "The requested byte range"},
        307: {"description": "Redirect to a presigned URL of the blob store (the blob verified first)"},
        404: {"description": "No such audio (or an unknown file name), or not readable by the caller"},
        416: {"description": "Range not satisfiable"},
        **CORRUPT_RESPONSE,
    },
    summary="Download audio (presigned redirect from S3, or streamed with ranges)",
)
async def download(
    filename: FileName,
    request: Request,
    state: State,
    user: Annotated[Principal, Depends(current_user_or_query_token)],
    redirect: Annotated[bool, Query(description="Allow a redirect to a presigned blob store URL")] = True,
    disposition: Annotated[Literal["attachment", "inline"], Query()] = "attachment",
    range_header: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
    name: DownloadName = None,
) -> Response:
    match = _FILENAME_RE.match(filename)
    if not match:
        raise ApiError(404, f"no audio named {filename[:80]!r}: names are <blob key>.<extension>")
    key = match.group(1)
    await require_readable_blob(state, user, key)
    try:
        info = await asyncio.to_thread(state.store.stat, key)
    except NotFound:
        raise ApiError(404, f"audio {key} not found") from None
    content_type = info.content_type if info.content_type in BY_CONTENT_TYPE else ""
    if not content_type:
        prefix = await asyncio.to_thread(state.store.read_range, key, 0, min(info.size, 64 * 1024) - 1)
        kind = sniff(prefix)
        content_type = kind.content_type if kind else "application/octet-stream"
    name = convert.human_filename(name or "", key, content_type)
    if redirect and request.method == "GET":
        url = await asyncio.to_thread(state.presign, key, name, content_type)
        if url:
            await verify_blob(state, key)  # the store serves it unchecked: check it before pointing there
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store", **digest_headers(key)})
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(disposition, name),
        "Cache-Control": "private, max-age=31536000, immutable",
        **digest_headers(key),
    }
    byte_range = None
    if range_header:
        try:
            byte_range = parse_range(range_header, info.size)
        except ApiError:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{info.size}", **headers})
    if byte_range is None:
        headers["Content-Length"] = str(info.size)
        if request.method == "HEAD":
            return Response(status_code=200, media_type=content_type, headers=headers)
        body = await _verified_body(state, key, state.store.iter_chunks(key), info.size)
        if isinstance(body, bytes):
            return Response(body, media_type=content_type, headers=headers)
        return StreamingResponse(body, media_type=content_type, headers=headers)
    start, end = byte_range
    headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD":
        return Response(status_code=206, media_type=content_type, headers=headers)
    ranged = await _verified_body(state, key, state.store.read_verified_range(key, start, end), end - start + 1)
    if isinstance(ranged, bytes):
        return Response(ranged, status_code=206, media_type=content_type, headers=headers)
    return StreamingResponse(ranged, status_code=206, media_type=content_type, headers=headers)
