"""Content-addressed blob store: every blob's key is the SHA-256 of its bytes.

Two back ends share one contract: :class:`LocalBlobStore` (a directory, for the
embedded single-machine mode) and :class:`S3BlobStore` (MinIO or any S3 server,
through the ``minio`` SDK). Writes hash while they stream and verify the key;
reads re-hash and refuse a blob whose bytes no longer match its key
(:class:`~beatflow.common.errors.DataLoss`), so corruption is never served.
The API is synchronous; async callers use ``asyncio.to_thread``.
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
        digest = hashlib.sha256()
        size = 0
        with tempfile.NamedTemporaryFile(prefix="blob-", dir=self._spool_dir(), delete=False) as tmp:
            try:
                while chunk := fileobj.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise InvalidArgument(f"upload larger than the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    tmp.write(chunk)
                tmp.flush()
            except BaseException:
                tmp.close()
                os.unlink(tmp.name)
                raise
        key = digest.hexdigest()
        try:
            if not self.exists(key):
                self._store_spooled(key, Path(tmp.name), size, content_type)
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)
        return key

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def iter_chunks(self, key: str) -> Iterator[bytes]:
        """Yield the blob in chunks; raises DataLoss at the end if the bytes do not hash to ``key``."""
        check_key(key)
        digest = hashlib.sha256()
        for chunk in self._raw_chunks(key):
            digest.update(chunk)
            yield chunk
        if digest.hexdigest() != key:
            raise DataLoss(f"blob {key} is corrupted: its content hashes to {digest.hexdigest()}")

    def verify(self, key: str) -> None:
        for _ in self.iter_chunks(key):
            pass

    @abc.abstractmethod
    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` inclusive (for HTTP range requests; not re-hashed)."""

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
    def _store_spooled(self, key: str, path: Path, size: int, content_type: str) -> None: ...

    @abc.abstractmethod
    def _raw_chunks(self, key: str) -> Iterator[bytes]: ...


class LocalBlobStore(BlobStore):
    """Blobs as files ``root/ab/cd/<key>`` with a ``.json`` sidecar for the content type."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def _spool_dir(self) -> str | None:
        return str(self.root / "tmp")

    def _store_spooled(self, key: str, path: Path, size: int, content_type: str) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        meta = {"content_type": content_type, "size": size, "created_at": time.time()}
        with tempfile.NamedTemporaryFile("w", prefix="meta-", dir=self.root / "tmp", delete=False) as tmp:
            tmp.write(json.dumps(meta))
        os.replace(tmp.name, dest.with_suffix(".json"))  # a concurrent put of the same blob rewrites it
        os.replace(path, dest)  # atomic: readers never see a half-written blob

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
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        st = path.stat()
        return BlobInfo(key, st.st_size, meta.get("content_type", DEFAULT_TYPE), meta.get("created_at", st.st_mtime))

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    def list_keys(self) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            if _KEY_RE.match(path.name):
                yield path.name


class S3BlobStore(BlobStore):
    """Blobs as objects ``<key>`` in one bucket of MinIO or another S3 server."""

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

    def _store_spooled(self, key: str, path: Path, size: int, content_type: str) -> None:
        self.client.fput_object(self.bucket, key, str(path), content_type=content_type)

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
