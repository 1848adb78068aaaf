"""Presigned download URLs, signed for the object store's public address.

The services may reach MinIO by an internal name ("minio:9000") that browsers
cannot resolve. A SigV4 signature covers the host, so the URL must be signed
for the address clients use; signing needs no connection, only the keys and
the region.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from beatflow.common.blobstore import BlobStore, check_key
from beatflow.gateway.config import GatewaySettings

Presigner = Callable[[str, str, str], "str | None"]


def make_presigner(settings: GatewaySettings, store: BlobStore) -> Presigner:
    """``presign(key, filename, content_type) -> url | None`` (None: stream through the gateway)."""
    expires = settings.presign_expires_s
    if not settings.presign_downloads or settings.blob_backend != "s3":
        return lambda key, filename, content_type: None
    if not settings.presign_endpoint:
        return lambda key, filename, content_type: store.presigned_get_url(key, expires, filename, content_type)

    from minio import Minio

    client = Minio(
        settings.presign_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=settings.s3_secure if settings.presign_secure is None else settings.presign_secure,
        region=settings.s3_region,  # known region: signing makes no request
    )

    def presign(key: str, filename: str, content_type: str) -> str | None:
        params: dict[str, str] = {
            "response-content-disposition": f'attachment; filename="{filename}"',
            "response-content-type": content_type,
        }
        return str(
            client.presigned_get_object(
                settings.s3_bucket,
                check_key(key),
                expires=dt.timedelta(seconds=expires),
                extra_query_params=params,  # type: ignore[arg-type]
            )
        )

    return presign
