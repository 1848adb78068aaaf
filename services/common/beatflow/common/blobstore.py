"""Content-addressed blob store: every blob's key is the SHA-256 of its bytes.

Two back ends share one contract: :class:`LocalBlobStore` (a directory, for the
embedded single-machine mode) and :class:`S3BlobStore` (MinIO or any S3 server,
through the ``minio`` SDK). The API is synchronous; async callers use
``asyncio.to_thread``.

Integrity guarantee: no read hands out bytes that fail verification.

* Writes hash while they stream; the key *is* the hash. Each blob also gets a
  chunk-digest sidecar (the SHA-256 of every :data:`CHUNK`-sized piece), written
  before the blob itself becomes visible.
* :meth:`BlobStore.iter_chunks` checks each chunk against its sidecar digest
  before yielding it, and holds the last chunk back until the whole blob hashed
  to its key, so a reader never receives a corrupt chunk, nor a complete blob
  that is corrupt: it gets :class:`~beatflow.common.errors.DataLoss` instead.
  :meth:`get_bytes` and :meth:`verify` are built on it.
* :meth:`BlobStore.read_verified_range` reads whole chunks and checks them
  against the sidecar, so byte ranges are verified too. A blob without a
  sidecar (stored before sidecars existed) is verified whole once, and its
  sidecar is written then.
* :meth:`BlobStore.read_range` is the unverified primitive: only for sniffing
  headers, never for handing bytes on.
* A put of content whose stored copy is corrupt replaces the stored copy (so
  uploading the original again repairs the store).

A damaged sidecar makes reads of an intact blob fail (safe side); it is
rewritten by the next put of that content.
"""

from __future__ import annotations

import abc
import datetime as dt
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from beatflow.common.errors import DataLoss, InvalidArgument, NotFound
from beatflow.common.settings import CommonSettings

CHUNK = 1024 * 1024
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_TYPE = "application/octet-stream"


def check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise InvalidArgument(f"not a blob key (64 lowercase hex characters): {key[:80]!r}")
    return key


class _ChunkHasher:
    """SHA-256 of the whole stream and of every CHUNK-sized piece of it, whatever the read sizes."""

    def __init__(self) -> None:
        self.whole = hashlib.sha256()
        self.chunks: list[str] = []
        self._current = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes) -> None:
        self.whole.update(data)
        view = memoryview(data)
        while view:
            take = min(len(view), CHUNK - self._filled)
            self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == CHUNK:
                self.chunks.append(self._current.hexdigest())
                self._current, self._filled = hashlib.sha256(), 0

    def finish(self) -> tuple[str, list[str]]:
        if self._filled:
            self.chunks.append(self._current.hexdigest())
            self._current, self._filled = hashlib.sha256(), 0
        return self.whole.hexdigest(), self.chunks


def _corrupt(key: str, where: str) -> DataLoss:
    return DataLoss(f"blob {key} is corrupted: {where} does not match its digest")


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    content_type: str
    created_at: float


class BlobStore(abc.ABC):
    """Content-addressed storage; identical content is stored once."""

    def put_bytes(self, data: bytes, content_type: str = DEFAULT_TYPE) -> str:
        return self.put_stream(io.BytesIO(data), content_type=content_type)

    def put_file(self, path: str | os.PathLike[str], content_type: str = DEFAULT_TYPE) -> str:
        with open(path, "rb") as fh:
            return self.put_stream(fh, content_type=content_type)

    def put_stream(self, fileobj: BinaryIO, content_type: str = DEFAULT_TYPE, *, max_bytes: int | None = None) -> str:
        """Spool ``fileobj`` to a temporary file while hashing, then store it under its hash.

        ``max_bytes`` refuses (InvalidArgument) a stream longer than that before
        anything is stored.
        """
        hasher = _ChunkHasher()
        size = 0
        with tempfile.NamedTemporaryFile(prefix="blob-", dir=self._spool_dir(), delete=False) as tmp:
            try:
                while chunk := fileobj.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise InvalidArgument(f"upload larger than the limit of {max_bytes} bytes")
                    hasher.update(chunk)
                    tmp.write(chunk)
                tmp.flush()
            except BaseException:
                tmp.close()
                os.unlink(tmp.name)
                raise
        key, chunks = hasher.finish()
        try:
            if not self._intact(key):
                self._store_spooled(key, Path(tmp.name), size, content_type, chunks)
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)
        return key

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def _intact(self, key: str) -> bool:
        """Whether a blob is stored under ``key`` and verifies (a corrupt one is to be replaced)."""
        if not self.exists(key):
            return False
        try:
            self.verify(key)
        except DataLoss:
            return False
        except NotFound:  # deleted meanwhile
            return False
        return True

    def iter_chunks(self, key: str) -> Iterator[bytes]:
        """Yield the blob in CHUNK-sized pieces, each checked before it is yielded.

        A piece that does not match its sidecar digest raises DataLoss instead of
        being yielded; the last piece is yielded only after the whole blob hashed to
        ``key``. Without a sidecar only the whole-blob check applies (still before
        the last piece).
        """
        check_key(key)
        expected = self._load_chunk_digests(key)
        whole = hashlib.sha256()
        pending: bytes | None = None
        index = 0
        for chunk in self._aligned(self._raw_chunks(key)):
            if expected is not None and (
                index >= len(expected) or hashlib.sha256(chunk).hexdigest() != expected[index]
            ):
                raise _corrupt(key, f"chunk {index}")
            whole.update(chunk)
            index += 1
            if pending is not None:
                yield pending
                pending = None
            if expected is not None and index < len(expected):
                yield chunk  # checked against its digest, and not the last one
            else:
                pending = chunk
        if expected is not None and index != len(expected):
            raise _corrupt(key, "its length")
        if whole.hexdigest() != key:
            raise DataLoss(f"blob {key} is corrupted: its content hashes to {whole.hexdigest()}")
        if pending is not None:
            yield pending

    @staticmethod
    def _aligned(pieces: Iterator[bytes]) -> Iterator[bytes]:
        """Re-cut a byte stream into CHUNK-sized pieces (the last may be shorter)."""
        buffer = bytearray()
        for piece in pieces:
            buffer += piece
            while len(buffer) >= CHUNK:
                yield bytes(buffer[:CHUNK])
                del buffer[:CHUNK]
        if buffer:
            yield bytes(buffer)

    def verify(self, key: str) -> None:
        """Raise DataLoss (or NotFound) unless the stored blob hashes to its key."""
        for _ in self.iter_chunks(key):
            pass

    def chunk_digests(self, key: str) -> list[str]:
        """The SHA-256 of every CHUNK of the blob, from its sidecar.

        A blob stored without a sidecar is verified whole (DataLoss if corrupt) and
        its sidecar written, so later range reads are checked piece by piece.
        """
        check_key(key)
        digests = self._load_chunk_digests(key)
        if digests is not None:
            return digests
        hasher = _ChunkHasher()
        for piece in self._raw_chunks(key):
            hasher.update(piece)
        whole, digests = hasher.finish()
        if whole != key:
            raise DataLoss(f"blob {key} is corrupted: its content hashes to {whole}")
        self._save_chunk_digests(key, digests)
        return digests

    def read_verified_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start..end`` inclusive, in pieces, each from a chunk checked against its digest.

        Raises DataLoss before yielding anything from a chunk that fails its check.
        """
        if end < start:
            return
        digests = self.chunk_digests(key)
        first, last = start // CHUNK, end // CHUNK
        for index in range(first, last + 1):
            if index >= len(digests):
                return  # past the end, as read_range
            chunk_start = index * CHUNK
            chunk = self.read_range(key, chunk_start, chunk_start + CHUNK - 1)
            if hashlib.sha256(chunk).hexdigest() != digests[index]:
                raise _corrupt(key, f"chunk {index}")
            lo = max(start, chunk_start) - chunk_start
            hi = min(end, chunk_start + CHUNK - 1) - chunk_start + 1
            yield chunk[lo:hi]

    @abc.abstractmethod
    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` inclusive, NOT verified: for sniffing headers only.

        Anything handed on to a client or a model goes through iter_chunks,
        get_bytes or read_verified_range.
        """

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def stat(self, key: str) -> BlobInfo: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def list_keys(self) -> Iterator[str]: ...

    def presigned_get_url(
        self, key: str, expires_s: int = 3600, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        """A time-limited URL the client can fetch directly, or None if the store has none."""
        return None

    def _spool_dir(self) -> str | None:
        return None

    @abc.abstractmethod
    def _store_spooled(self, key: str, path: Path, size: int, content_type: str, chunks: list[str]) -> None: ...

    @abc.abstractmethod
    def _raw_chunks(self, key: str) -> Iterator[bytes]: ...

    @abc.abstractmethod
    def _load_chunk_digests(self, key: str) -> list[str] | None:
        """The sidecar's chunk digests, or None when the blob has no (readable) sidecar."""

    @abc.abstractmethod
    def _save_chunk_digests(self, key: str, chunks: list[str]) -> None: ...


def _sidecar_digests(doc: object) -> list[str] | None:
    """Chunk digests from a sidecar document; None unless it is well formed for this CHUNK size."""
    if not isinstance(doc, dict) or doc.get("chunk_size") != CHUNK:
        return None
    chunks = doc.get("chunks")
    if not isinstance(chunks, list):
        return None
    if not all(isinstance(c, str) and _KEY_RE.match(c) for c in chunks):
        return None
    return chunks


class LocalBlobStore(BlobStore):
    """Blobs as files ``root/ab/cd/<key>`` with a ``.json`` sidecar for the content type and chunk digests."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def _spool_dir(self) -> str | None:
        return str(self.root / "tmp")

    def _write_meta(self, key: str, meta: dict[str, object]) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", prefix="meta-", dir=self.root / "tmp", delete=False) as tmp:
            tmp.write(json.dumps(meta))
        os.replace(tmp.name, dest.with_suffix(".json"))  # a concurrent put of the same blob rewrites it

    def _read_meta(self, key: str) -> dict[str, object]:
        try:
            meta = json.loads(self._path(key).with_suffix(".json").read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _store_spooled(self, key: str, path: Path, size: int, content_type: str, chunks: list[str]) -> None:
        meta = {
            "content_type": content_type,
            "size": size,
            "created_at": time.time(),
            "chunk_size": CHUNK,
            "chunks": chunks,
        }
        self._write_meta(key, meta)
        os.replace(path, self._path(key))  # atomic: readers never see a half-written blob

    def _load_chunk_digests(self, key: str) -> list[str] | None:
        return _sidecar_digests(self._read_meta(key))

    def _save_chunk_digests(self, key: str, chunks: list[str]) -> None:
        info = self.stat(key)
        meta = {**self._read_meta(key), "content_type": info.content_type, "size": info.size}
        self._write_meta(key, {**meta, "chunk_size": CHUNK, "chunks": chunks})

    def _raw_chunks(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {key} not found") from None
        with fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def read_range(self, key: str, start: int, end: int) -> bytes:
        path = self._path(key)
        if not path.exists():
            raise NotFound(f"blob {key} not found")
        if end < start:
            return b""
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(end - start + 1)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def stat(self, key: str) -> BlobInfo:
        path = self._path(key)
        if not path.exists():
            raise NotFound(f"blob {key} not found")
        meta = self._read_meta(key)
        st = path.stat()
        content_type = meta.get("content_type")
        created = meta.get("created_at")
        return BlobInfo(
            key,
            st.st_size,
            content_type if isinstance(content_type, str) else DEFAULT_TYPE,
            float(created) if isinstance(created, (int, float)) else st.st_mtime,
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    def list_keys(self) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            if _KEY_RE.match(path.name):
                yield path.name


class S3BlobStore(BlobStore):
    """Blobs as objects ``<key>`` in one bucket of MinIO or another S3 server.

    Each blob's chunk digests are the object ``<key>.chunks.json`` beside it.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        create_bucket: bool = True,
    ) -> None:
        from minio import Minio

        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
        self.bucket = bucket
        if create_bucket and not self.client.bucket_exists(bucket):
            from minio.error import S3Error

            try:
                self.client.make_bucket(bucket)
            except S3Error as exc:  # another process created it since we looked
                if exc.code != "BucketAlreadyOwnedByYou":
                    raise

    def _store_spooled(self, key: str, path: Path, size: int, content_type: str, chunks: list[str]) -> None:
        self._save_chunk_digests(key, chunks)  # before the blob: a visible blob always has its sidecar
        self.client.fput_object(self.bucket, key, str(path), content_type=content_type)

    @staticmethod
    def _sidecar_name(key: str) -> str:
        return f"{check_key(key)}.chunks.json"

    def _load_chunk_digests(self, key: str) -> list[str] | None:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, self._sidecar_name(key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        try:
            return _sidecar_digests(json.loads(response.read()))
        except ValueError:
            return None
        finally:
            response.close()
            response.release_conn()

    def _save_chunk_digests(self, key: str, chunks: list[str]) -> None:
        doc = json.dumps({"chunk_size": CHUNK, "chunks": chunks}).encode()
        self.client.put_object(
            self.bucket, self._sidecar_name(key), io.BytesIO(doc), length=len(doc), content_type="application/json"
        )

    def _response(self, key: str, offset: int = 0, length: int = 0):
        from minio.error import S3Error

        try:
            return self.client.get_object(self.bucket, check_key(key), offset=offset, length=length)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise NotFound(f"blob {key} not found") from None
            raise

    def _raw_chunks(self, key: str) -> Iterator[bytes]:
        response = self._response(key)
        try:
            yield from response.stream(CHUNK)
        finally:
            response.close()
            response.release_conn()

    def read_range(self, key: str, start: int, end: int) -> bytes:
        from minio.error import S3Error

        if end < start:  # minio reads a length <= 0 as "to the end"
            self.stat(key)
            return b""
        try:
            response = self._response(key, offset=start, length=end - start + 1)
        except S3Error as exc:
            if exc.code == "InvalidRange":  # starts past the end (as the local store: no bytes)
                return b""
            raise
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def stat(self, key: str) -> BlobInfo:
        from minio.error import S3Error

        try:
            st = self.client.stat_object(self.bucket, check_key(key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                raise NotFound(f"blob {key} not found") from None
            raise
        created = st.last_modified.timestamp() if st.last_modified else time.time()
        return BlobInfo(key, int(st.size or 0), st.content_type or DEFAULT_TYPE, created)

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, check_key(key))
        self.client.remove_object(self.bucket, self._sidecar_name(key))

    def list_keys(self) -> Iterator[str]:
        for obj in self.client.list_objects(self.bucket, recursive=True):
            if obj.object_name and _KEY_RE.match(obj.object_name):
                yield obj.object_name

    def presigned_get_url(
        self, key: str, expires_s: int = 3600, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        headers: dict[str, str | list[str] | tuple[str]] = {}
        if filename:
            headers["response-content-disposition"] = f'attachment; filename="{filename}"'
        if content_type:
            headers["response-content-type"] = content_type
        return str(
            self.client.presigned_get_object(
                self.bucket,
                check_key(key),
                expires=dt.timedelta(seconds=expires_s),
                extra_query_params=headers or None,
            )
        )


def make_blob_store(settings: CommonSettings) -> BlobStore:
    """The store the settings name: ``local`` (``blob_dir``) or ``s3`` (``s3_*``)."""
    if settings.blob_backend == "local":
        return LocalBlobStore(settings.blob_dir)
    if settings.blob_backend == "s3":
        return S3BlobStore(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    raise ValueError(f"unknown blob backend {settings.blob_backend!r} (expected 'local' or 's3')")
