"""Streaming upload parsing: multipart and raw bodies, limits enforced while bytes arrive."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from beatflow.gateway.httperrors import ApiError
from beatflow.gateway.routes.audio import parse_range
from beatflow.gateway.upload_spool import spool_upload

BOUNDARY = "----beatflowtest"


def _multipart(payload: bytes, field: str = "file") -> bytes:
    return (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="note"\r\n\r\n'
            "hello\r\n"
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="take 1.wav"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def _chunks(data: bytes, size: int, seen: list[int] | None = None) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        if seen is not None:
            seen.append(i)
        yield data[i : i + size]


async def test_multipart_file_part_is_spooled_and_hashed(tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    spooled = await spool_upload(
        f"multipart/form-data; boundary={BOUNDARY}", _chunks(_multipart(payload), 7919), 10**6, str(tmp_path)
    )
    try:
        with open(spooled.path, "rb") as fh:  # noqa: ASYNC230 - a test reading its own spool file
            assert fh.read() == payload
        assert spooled.size == len(payload)
        assert spooled.sha256 == hashlib.sha256(payload).hexdigest()
        assert spooled.client_filename == "take 1.wav"
    finally:
        os.unlink(spooled.path)


async def test_raw_body_over_the_limit_stops_reading_early(tmp_path: Path) -> None:
    seen: list[int] = []
    with pytest.raises(ApiError) as err:
        await spool_upload("audio/wav", _chunks(b"x" * 1_000_000, 10_000, seen), 50_000, str(tmp_path))
    assert err.value.status == 413
    assert len(seen) <= 6  # refused as soon as the limit was crossed, not after the whole body
    assert os.listdir(tmp_path) == []  # nothing left behind


async def test_multipart_without_file_part_or_boundary(tmp_path: Path) -> None:
    with pytest.raises(ApiError) as err:
        await spool_upload(
            f"multipart/form-data; boundary={BOUNDARY}", _chunks(_multipart(b"abc", "other"), 100), 1000, str(tmp_path)
        )
    assert err.value.status == 400
    with pytest.raises(ApiError):
        await spool_upload("multipart/form-data", _chunks(b"abc", 10), 1000, str(tmp_path))
    with pytest.raises(ApiError):
        await spool_upload("application/octet-stream", _chunks(b"", 10), 1000, str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_parse_range() -> None:
    assert parse_range("bytes=0-99", 1000) == (0, 99)
    assert parse_range("bytes=900-", 1000) == (900, 999)
    assert parse_range("bytes=-100", 1000) == (900, 999)
    assert parse_range("bytes=-5000", 1000) == (0, 999)
    assert parse_range("bytes=990-5000", 1000) == (990, 999)
    assert parse_range("bytes=0-1,5-6", 1000) is None  # several ranges: whole body
    assert parse_range("items=0-1", 1000) is None
    for bad in ["bytes=1000-", "bytes=5-2", "bytes=-0"]:
        with pytest.raises(ApiError) as err:
            parse_range(bad, 1000)
        assert err.value.status == 416


async def test_multipart_body_beyond_the_file_part_counts_against_the_limit(tmp_path: Path) -> None:
    """Bytes outside the 'file' part (other fields, their headers) are bounded too, not parsed forever."""
    filler = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="pad"\r\n\r\n').encode() + b"p" * 1_000_000
    body = filler + b"\r\n" + _multipart(b"RIFF" + b"a" * 1000)
    seen: list[int] = []
    with pytest.raises(ApiError) as err:
        await spool_upload(
            f"multipart/form-data; boundary={BOUNDARY}", _chunks(body, 10_000, seen), 50_000, str(tmp_path)
        )
    assert err.value.status == 413
    assert len(seen) < 20  # refused once the body passed the limit and its allowance for multipart framing
    assert os.listdir(tmp_path) == []

    huge_header = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{"n" * 1_000_000}"\r\n\r\n'
    seen.clear()
    with pytest.raises(ApiError) as err:
        await spool_upload(
            f"multipart/form-data; boundary={BOUNDARY}",
            _chunks(huge_header.encode() + b"RIFF\r\n--" + BOUNDARY.encode() + b"--\r\n", 10_000, seen),
            50_000,
            str(tmp_path),
        )
    assert err.value.status in (400, 413)  # the parser's own header cap, or the body limit
    assert len(seen) < 20
