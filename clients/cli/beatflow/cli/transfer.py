"""Uploads streamed from disk and downloads checked against their content hash.

Audio is addressed by the SHA-256 of its bytes, so an upload that is cut off
is simply sent again (the server keeps one copy), and a download resumes from
the partial file with a Range request, then is hashed whole and moved into
place atomically: a file at its final name is always complete and correct.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from beatflow.cli import errors
from beatflow.cli.api import ApiError, Client
from beatflow.cli.errors import CliError
from beatflow.cli.hashing import CHUNK, sha256_file

Advance = Callable[[int], None]


def _noop(_: int) -> None:
    pass


def _chunks(path: Path, advance: Advance) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            advance(len(chunk))
            yield chunk


def upload(client: Client, path: Path, expected_key: str = "", advance: Advance = _noop) -> dict[str, Any]:
    """Send the file as the raw request body (never whole in memory); the server's upload record."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}", errors.LOCAL_FILE) from None
    response = client.request(
        "POST",
        "/api/audio/upload",
        content=_chunks(path, advance),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )
    body: dict[str, Any] = response.json()
    if expected_key and body.get("blob_key") != expected_key:
        raise CliError(f"{path} changed while it was being uploaded; run the command again", errors.LOCAL_FILE)
    return body


def download(
    client: Client, url: str, key: str, dest: Path, part_dir: Path, advance: Advance = _noop, total: Advance = _noop
) -> None:
    """Fetch ``url`` into ``dest`` through ``part_dir/<key>.part``, resuming a partial file."""
    part_dir.mkdir(parents=True, exist_ok=True)
    part = part_dir / f"{key}.part"
    have = part.stat().st_size if part.exists() else 0
    if have and sha256_file(part) == key:  # an earlier run fetched it all but did not move it into place
        advance(have)
    else:
        try:
            _fetch(client, url, part, have, advance, total)
        except ApiError as exc:
            if exc.status != 416 or not have:
                raise
            _fetch(client, url, part, 0, advance, total)  # the partial file is not a prefix of this blob
    if sha256_file(part) != key:
        part.unlink(missing_ok=True)
        raise CliError(
            f"the download of {key[:12]} did not match its content hash; run the command again", errors.LOCAL_FILE
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)


def _fetch(client: Client, url: str, part: Path, have: int, advance: Advance, total: Advance) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
        mode = "ab" if response.status_code == 206 else "wb"  # a 200 is the whole body: start over
        if mode == "wb":
            have = 0
        length = response.headers.get("content-length")
        if length and length.isdigit():
            total(have + int(length))
        advance(have)
        with open(part, mode) as fh:
            for chunk in response.iter_bytes(CHUNK):
                fh.write(chunk)
                advance(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
