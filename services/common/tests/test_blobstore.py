"""Blob store contract, run against the local directory store and a real S3 server."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from pathlib import Path

import pytest

from beatflow.common.blobstore import BlobStore, LocalBlobStore, S3BlobStore, make_blob_store
from beatflow.common.errors import DataLoss, InvalidArgument, NotFound
from beatflow.common.settings import CommonSettings


def test_key_is_sha256_and_round_trips(blob_store: BlobStore) -> None:
    data = b"RIFF" + bytes(range(256)) * 100
    key = blob_store.put_bytes(data, content_type="audio/wav")
    assert key == hashlib.sha256(data).hexdigest()
    assert blob_store.get_bytes(key) == data
    info = blob_store.stat(key)
    assert info.size == len(data)
    assert info.content_type == "audio/wav"
    assert blob_store.read_range(key, 4, 9) == data[4:10]


def test_same_content_stored_once(blob_store: BlobStore) -> None:
    first = blob_store.put_bytes(b"same bytes")
    second = blob_store.put_stream(io.BytesIO(b"same bytes"))
    assert first == second
    assert list(blob_store.list_keys()) == [first]


def test_large_stream_spans_chunks(blob_store: BlobStore) -> None:
    data = bytes(range(251)) * 12_000  # ~3 MB, several chunks
    key = blob_store.put_stream(io.BytesIO(data))
    assert b"".join(blob_store.iter_chunks(key)) == data


def test_stream_over_limit_is_refused_and_nothing_stored(blob_store: BlobStore) -> None:
    with pytest.raises(InvalidArgument, match="limit"):
        blob_store.put_stream(io.BytesIO(b"x" * 5000), max_bytes=4096)
    assert list(blob_store.list_keys()) == []


def test_missing_and_malformed_keys(blob_store: BlobStore) -> None:
    with pytest.raises(NotFound):
        blob_store.get_bytes("0" * 64)
    with pytest.raises(InvalidArgument):
        blob_store.get_bytes("../../etc/passwd")
    assert not blob_store.exists("f" * 64)


def test_delete(blob_store: BlobStore) -> None:
    key = blob_store.put_bytes(b"to delete")
    blob_store.delete(key)
    assert not blob_store.exists(key)


def test_local_blob_altered_behind_the_store_is_refused(local_store: LocalBlobStore) -> None:
    key = local_store.put_bytes(b"original audio bytes")
    path = next(Path(local_store.root).glob(f"??/??/{key}"))
    path.write_bytes(b"tampered audio bytes")
    with pytest.raises(DataLoss, match="corrupted"):
        local_store.get_bytes(key)


def test_s3_blob_altered_behind_the_store_is_refused(s3_store: S3BlobStore) -> None:
    key = s3_store.put_bytes(b"original audio bytes")
    # Overwrite the object directly through the S3 API, bypassing the store.
    s3_store.client.put_object(s3_store.bucket, key, io.BytesIO(b"tampered"), length=8)
    with pytest.raises(DataLoss, match="corrupted"):
        s3_store.get_bytes(key)


def test_presigned_url_serves_the_blob(s3_store: S3BlobStore) -> None:
    import urllib.request

    key = s3_store.put_bytes(b"presigned content", content_type="audio/flac")
    url = s3_store.presigned_get_url(key, filename="take.flac")
    assert url is not None
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == b"presigned content"
        assert "take.flac" in resp.headers.get("Content-Disposition", "")


def test_make_blob_store_from_settings(tmp_path: Path, s3_settings: dict[str, object]) -> None:
    local = make_blob_store(CommonSettings(blob_backend="local", blob_dir=tmp_path / "b"))
    assert isinstance(local, LocalBlobStore)
    s3 = make_blob_store(CommonSettings(**s3_settings))  # type: ignore[arg-type]
    assert isinstance(s3, S3BlobStore)
    key = s3.put_bytes(b"via settings")
    assert s3.get_bytes(key) == b"via settings"
    with pytest.raises(ValueError, match="unknown blob backend"):
        make_blob_store(CommonSettings(blob_backend="ftp"))


def test_read_range_outside_the_blob_is_empty(blob_store: BlobStore) -> None:
    key = blob_store.put_bytes(b"0123456789")
    assert blob_store.read_range(key, 8, 20) == b"89"
    assert blob_store.read_range(key, 10, 15) == b""  # starts past the end
    assert blob_store.read_range(key, 5, 3) == b""  # empty range, not "the rest"
    empty = blob_store.put_bytes(b"")
    assert blob_store.read_range(empty, 0, 0) == b""


def test_services_starting_together_share_a_new_bucket(s3_settings: dict[str, object]) -> None:
    """Every store checks for the bucket, then creates it: the losers of that race must not fail
    (outside us-east-1, S3 answers a second create with BucketAlreadyOwnedByYou)."""
    bucket = "r-" + uuid.uuid4().hex[:20]
    barrier = threading.Barrier(8)
    errors: list[Exception] = []

    def start() -> None:
        barrier.wait()
        try:
            S3BlobStore(
                str(s3_settings["s3_endpoint"]),
                str(s3_settings["s3_access_key"]),
                str(s3_settings["s3_secret_key"]),
                bucket,
                region="eu-west-1",
            )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_concurrent_puts_of_one_new_blob_never_show_torn_metadata(local_store: LocalBlobStore) -> None:
    """Uploads of the same new content race past the exists check; a reader must never see
    the content-type sidecar half rewritten."""
    errors: list[str] = []
    for _ in range(50):
        payload = uuid.uuid4().bytes * 4  # new content every round
        barrier = threading.Barrier(8)

        def put_and_stat(payload: bytes = payload, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                info = local_store.stat(local_store.put_bytes(payload, content_type="audio/wav"))
                assert info.content_type == "audio/wav" and info.size == len(payload)
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=put_and_stat) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
