"""Receive an upload as a stream: spool to a temporary file while hashing, under a size limit.

The body is either raw audio (any ``Content-Type``) or ``multipart/form-data``
with the audio in the ``file`` part (what browsers send). Multipart is parsed
incrementally, so at no point is the whole upload in memory, and the size
limit is enforced as bytes arrive, not after the fact.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO

from python_multipart.multipart import MultipartParser, parse_options_header

from beatflow.gateway.httperrors import ApiError

MULTIPART_OVERHEAD = 64 * 1024
"""Bytes a multipart body may carry beyond the audio: boundaries, part headers, small fields."""


@dataclass
class Spooled:
    path: str
    size: int
    sha256: str
    client_filename: str | None


class _Sink:
    """Writes bytes to the spool file, hashing and counting them against the limit."""

    def __init__(self, fh: IO[bytes], limit: int) -> None:
        self.fh = fh
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ApiError(413, f"upload larger than the limit of {self.limit} bytes")
        self.digest.update(data)
        self.fh.write(data)


@dataclass
class _MultipartState:
    sink: _Sink
    headers: dict[bytes, bytes] = field(default_factory=dict)
    field_name: bytes = b""
    value: bytes = b""
    in_file: bool = False
    file_parts: int = 0
    filename: str | None = None


def _multipart_parser(boundary: bytes, state: _MultipartState) -> MultipartParser:
    def on_part_begin() -> None:
        state.headers = {}
        state.in_file = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.field_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.value += data[start:end]

    def on_header_end() -> None:
        state.headers[state.field_name.strip().lower()] = state.value.strip()
        state.field_name, state.value = b"", b""

    def on_headers_finished() -> None:
        _disposition, params = parse_options_header(state.headers.get(b"content-disposition", b""))
        if params.get(b"name") == b"file":
            if state.file_parts:
                raise ApiError(400, "send one file per upload")
            state.in_file = True
            state.file_parts += 1
            raw_name = params.get(b"filename")
            state.filename = raw_name.decode("utf-8", "replace")[:255] if raw_name else None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.in_file:
            state.sink.write(data[start:end])

    def on_part_end() -> None:
        state.in_file = False

    return MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )


async def spool_upload(
    content_type: str, chunks: AsyncIterator[bytes], limit: int, spool_dir: str | None = None
) -> Spooled:
    """Write the uploaded audio to a temporary file; the caller deletes ``Spooled.path``."""
    mime, params = parse_options_header(content_type or "application/octet-stream")
    fd, path = tempfile.mkstemp(prefix="upload-", dir=spool_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            sink = _Sink(fh, limit)
            filename = None
            if mime == b"multipart/form-data":
                boundary = params.get(b"boundary")
                if not boundary:
                    raise ApiError(400, "multipart upload without a boundary")
                state = _MultipartState(sink)
                try:
                    parser = _multipart_parser(boundary, state)
                    received = 0
                    async for chunk in chunks:
                        # Other fields and part headers are not spooled, but bounded all the same.
                        received += len(chunk)
                        if received > limit + MULTIPART_OVERHEAD:
                            raise ApiError(413, f"upload larger than the limit of {limit} bytes")
                        parser.write(chunk)
                    parser.finalize()
                except ApiError:
                    raise
                except Exception as exc:
                    raise ApiError(400, f"malformed multipart body: {exc}") from None
                if not state.file_parts:
                    raise ApiError(400, "multipart upload without a 'file' part")
                filename = state.filename
            else:
                async for chunk in chunks:
                    sink.write(chunk)
            if sink.size == 0:
                raise ApiError(400, "empty upload")
        return Spooled(path, sink.size, sink.digest.hexdigest(), filename)
    except BaseException:
        os.unlink(path)
        raise
