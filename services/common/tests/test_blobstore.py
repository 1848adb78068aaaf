"""Blob store contract, run against the local directory store and a real S3 server."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from pathlib import Path

import pytest

from beatflow.common.blobstore import CHUNK, BlobStore, LocalBlobStore, S3BlobStore, make_blob_store
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


def _flip_byte(store: BlobStore, key: str, offset: int) -> None:
    """Change one stored byte behind the store's back (as disk or bucket rot would)."""
    if isinstance(store, LocalBlobStore):
        path = next(Path(store.root).glob(f"??/??/{key}"))
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        assert isinstance(store, S3BlobStore)
        data = bytearray(store.client.get_object(store.bucket, key).read())
        data[offset] ^= 0x01
        store.client.put_object(store.bucket, key, io.BytesIO(bytes(data)), length=len(data))


def test_one_flipped_byte_is_refused_by_every_verified_read(blob_store: BlobStore) -> None:
    data = bytes(range(251)) * 12_000  # ~3 MB: chunks 0, 1, 2
    key = blob_store.put_bytes(data)
    blob_store.verify(key)
    _flip_byte(blob_store, key, CHUNK + 10)  # in chunk 1
    with pytest.raises(DataLoss):
        blob_store.get_bytes(key)
    with pytest.raises(DataLoss):
        blob_store.verify(key)
    # Streaming: the intact chunk before the damage comes out, the damaged one never does.
    received: list[bytes] = []
    with pytest.raises(DataLoss, match="chunk 1"):
        for chunk in blob_store.iter_chunks(key):
            received.append(chunk)
    assert received == [data[:CHUNK]]
    # Ranges: one touching the damaged chunk is refused, others are served (and were verified).
    with pytest.raises(DataLoss):
        b"".join(blob_store.read_verified_range(key, CHUNK + 5, CHUNK + 20))
    assert b"".join(blob_store.read_verified_range(key, 100, 199)) == data[100:200]
    assert b"".join(blob_store.read_verified_range(key, 2 * CHUNK, len(data) - 1)) == data[2 * CHUNK :]


def test_the_last_chunk_is_withheld_until_the_whole_blob_verified(blob_store: BlobStore) -> None:
    data = b"a small blob, one chunk"
    key = blob_store.put_bytes(data)
    _flip_byte(blob_store, key, 3)
    received: list[bytes] = []
    with pytest.raises(DataLoss):
        for chunk in blob_store.iter_chunks(key):
            received.append(chunk)
    assert received == []


def test_verified_ranges_match_plain_reads(blob_store: BlobStore) -> None:
    data = bytes(range(256)) * 9000  # ~2.2 MB
    key = blob_store.put_bytes(data)
    for start, end in [(0, 0), (0, 99), (CHUNK - 1, CHUNK), (5, len(data) - 1), (len(data) - 1, len(data) + 50)]:
        assert b"".join(blob_store.read_verified_range(key, start, end)) == data[start : end + 1]
    assert b"".join(blob_store.read_verified_range(key, len(data), len(data) + 10)) == b""


def test_blob_without_sidecar_is_verified_whole_and_gets_one(blob_store: BlobStore) -> None:
    data = bytes(range(200)) * 7000
    key = blob_store.put_bytes(data)
    digests = blob_store.chunk_digests(key)
    blob_store._save_chunk_digests(key, [])  # as if stored before sidecars: then drop it
    if isinstance(blob_store, LocalBlobStore):
        meta = json.loads(blob_store._path(key).with_suffix(".json").read_text())
        meta.pop("chunks")
        blob_store._path(key).with_suffix(".json").write_text(json.dumps(meta))
    else:
        assert isinstance(blob_store, S3BlobStore)
        blob_store.client.remove_object(blob_store.bucket, f"{key}.chunks.json")
    assert blob_store._load_chunk_digests(key) is None
    assert b"".join(blob_store.read_verified_range(key, 10, 20)) == data[10:21]
    assert blob_store._load_chunk_digests(key) == digests
    assert blob_store.stat(key).size == len(data)


def test_uploading_the_original_again_repairs_a_corrupt_blob(blob_store: BlobStore) -> None:
    data = b"precious take" * 1000
    key = blob_store.put_bytes(data, content_type="audio/wav")
    _flip_byte(blob_store, key, 7)
    with pytest.raises(DataLoss):
        blob_store.get_bytes(key)
    assert blob_store.put_bytes(data, content_type="audio/wav") == key
    assert blob_store.get_bytes(key) == data
    assert list(blob_store.list_keys()) == [key]  # sidecars are not blobs
    blob_store.delete(key)
    assert list(blob_store.list_keys()) == []
