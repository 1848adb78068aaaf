"""Presigned URLs are signed for the address clients use, without contacting the store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from beatflow.common.blobstore import LocalBlobStore
from beatflow.gateway.config import GatewaySettings
from beatflow.gateway.presign import make_presigner

KEY = "ab" * 32


def test_public_endpoint_signs_for_the_public_host(tmp_path: Path) -> None:
    settings = GatewaySettings(
        blob_backend="s3",
        s3_endpoint="minio:9000",  # unreachable from here: signing must not need it
        s3_bucket="beatflow",
        presign_endpoint="media.example.com:9443",
        presign_secure=True,
        presign_expires_s=120,
    )
    url = make_presigner(settings, LocalBlobStore(tmp_path))(KEY, f"{KEY}.wav", "audio/wav")
    assert url is not None
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "media.example.com:9443", f"/beatflow/{KEY}")
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["120"]
    assert query["response-content-type"] == ["audio/wav"]
    assert query["response-content-disposition"] == [f'attachment; filename="{KEY}.wav"']
    assert len(query["X-Amz-Signature"][0]) == 64


def test_local_store_and_disabled_presigning_stream_instead(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    assert make_presigner(GatewaySettings(blob_backend="local"), store)(KEY, "f.wav", "audio/wav") is None
    off = GatewaySettings(blob_backend="s3", presign_downloads=False, presign_endpoint="x:1")
    assert make_presigner(off, store)(KEY, "f.wav", "audio/wav") is None
