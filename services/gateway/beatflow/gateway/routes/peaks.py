"""Waveform peaks of stored audio, for drawing without downloading the audio."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from beatflow.common.errors import NotFound
from beatflow.gateway import peaks
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.deps import State, current_user_or_query_token
from beatflow.gateway.httperrors import ApiError
from beatflow.gateway.task_blob_access import require_readable_blob

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/audio", tags=["audio"])

CACHE_TTL_S = 30 * 24 * 3600
_CACHE_PREFIX = "beatflow:peaks:v1:"
# Decoding is CPU work off the event loop; a few at a time keep the gateway responsive.
_COMPUTE_SLOTS = 2


class PeaksOut(BaseModel):
    """audiowaveform's JSON layout: ``data`` holds a min and a max per bucket, in [-1, 1]."""

    version: int = 2
    blob_key: str
    channels: int = Field(description="Channels in the audio (the peaks fold them together)")
    sample_rate: int
    frames: int
    duration_s: float
    samples_per_pixel: float = Field(description="Frames per bucket (on average)")
    bits: int = 32
    length: int = Field(description="Number of buckets")
    data: list[float] = Field(description="min0, max0, min1, max1, ...")


class PeaksCache:
    """Peaks in Redis by (content hash, bucket count); a cache outage only costs a recompute.

    After a failure the cache is left alone for ``RETRY_AFTER_S``, so an unreachable Redis
    neither slows every request by its timeouts nor floods the log.
    """

    RETRY_AFTER_S = 30.0

    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._down_until = 0.0
        self.slots = asyncio.Semaphore(_COMPUTE_SLOTS)

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, what: str, exc: Exception) -> None:
        log.warning("peaks cache %s failed (%s); computing without it for %.0f s", what, exc, self.RETRY_AFTER_S)
        self._down_until = time.monotonic() + self.RETRY_AFTER_S

    async def get(self, key: str, buckets: int) -> peaks.Peaks | None:
        if not self._available():
            return None
        try:
            raw = await self._redis.get(f"{_CACHE_PREFIX}{key}:{buckets}")
            if not raw:
                return None
            return peaks.Peaks.from_bytes(raw if isinstance(raw, bytes) else raw.encode("latin-1"))
        except (aioredis.RedisError, OSError, ValueError) as exc:
            self._failed("read", exc)
            return None

    async def put(self, key: str, buckets: int, value: peaks.Peaks) -> None:
        if not self._available():
            return
        try:
            await self._redis.set(f"{_CACHE_PREFIX}{key}:{buckets}", value.to_bytes(), ex=CACHE_TTL_S)
        except (aioredis.RedisError, OSError) as exc:
            self._failed("write", exc)

    async def close(self) -> None:
        await self._redis.aclose()


async def close_cache(app: object) -> None:
    """Called when the app stops: closes the cache's Redis connections if it was ever used."""
    cache: PeaksCache | None = getattr(getattr(app, "state", None), "peaks_cache", None)
    if cache is not None:
        await cache.close()


def _cache(request: Request, state: State) -> PeaksCache:
    cache: PeaksCache | None = getattr(request.app.state, "peaks_cache", None)
    if cache is None:
        cache = PeaksCache(state.settings.redis_url)
        request.app.state.peaks_cache = cache
    return cache


BlobKey = Annotated[str, Path(description="The blob key (64 hex digits), optionally with an extension")]


@router.get(
    "/peaks/{blob}",
    response_model=PeaksOut,
    responses={
        404: {"description": "No such audio, or not readable by the caller"},
        422: {"description": "The blob is not audio the gateway can decode"},
    },
    summary="Waveform peaks (min/max pairs) of stored audio, cached by content hash",
)
async def get_peaks(
    blob: BlobKey,
    request: Request,
    state: State,
    user: Annotated[Principal, Depends(current_user_or_query_token)],
    buckets: Annotated[int, Query(ge=1, le=peaks.MAX_BUCKETS, description="How many min/max pairs")] = 1000,
) -> JSONResponse:
    """Decoded in blocks through range reads, so memory stays small for long audio.

    Fewer buckets come back when the audio has fewer frames than asked for.
    """
    key = blob.split(".")[0]
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ApiError(404, f"no audio named {blob[:80]!r}")
    await require_readable_blob(state, user, key)
    cache = _cache(request, state)
    cached = await cache.get(key, buckets)
    result: peaks.Peaks
    if cached is not None:
        result = cached
    else:
        async with cache.slots:
            try:
                result = await asyncio.to_thread(peaks.compute, state.store, key, buckets)
            except NotFound:
                raise ApiError(404, f"audio {key} not found") from None
            except peaks.UndecodableAudio as exc:
                raise ApiError(422, f"cannot draw this audio: {exc}") from None
        await cache.put(key, buckets, result)
    data = [0.0] * (2 * len(result.mins))
    data[0::2] = [round(float(v), 4) for v in result.mins]
    data[1::2] = [round(float(v), 4) for v in result.maxs]
    body = PeaksOut(
        blob_key=key,
        channels=result.channels,
        sample_rate=result.sample_rate,
        frames=result.frames,
        duration_s=result.duration_s,
        samples_per_pixel=result.frames / max(1, len(result.mins)),
        length=len(result.mins),
        data=data,
    )
    return _immutable(body)


def _immutable(body: PeaksOut) -> JSONResponse:
    return JSONResponse(
        body.model_dump(),
        headers={
            "Cache-Control": "private, max-age=31536000, immutable",
            "ETag": f'"peaks-{body.blob_key}-{body.length}"',
        },
    )
