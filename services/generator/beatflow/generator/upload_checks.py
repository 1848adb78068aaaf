"""Checks on uploaded audio (melody recordings, continuation prompts) at submit time."""

from __future__ import annotations

import asyncio

import numpy as np

from beatflow.common.blobstore import BlobStore
from beatflow.common.errors import InvalidArgument, NotFound
from beatflow.generator import audio_files
from beatflow.generator.request import Limits


def _check(data: bytes, role: str, limits: Limits) -> audio_files.AudioInfo:
    wav, rate = audio_files.decode(data)
    info = audio_files.AudioInfo(rate, wav.shape[0], wav.shape[1])
    if not np.isfinite(wav).all():
        raise InvalidArgument(f"{role} audio contains NaN or infinite samples")
    if info.duration_s > limits.max_upload_s:
        raise InvalidArgument(f"{role} is {info.duration_s:.1f} s long; the limit is {limits.max_upload_s:g} s")
    if role == "melody":
        if info.duration_s < limits.min_melody_s:
            raise InvalidArgument(
                f"melody is too short ({info.duration_s:.2f} s); hum or play at least {limits.min_melody_s:g} s"
            )
        if audio_files.is_silent(wav, limits.silence_db):
            raise InvalidArgument("melody recording is silent: nothing to follow")
    else:
        if info.duration_s > limits.max_prompt_audio_s:
            raise InvalidArgument(
                f"audio prompt is {info.duration_s:.1f} s long; the limit is {limits.max_prompt_audio_s:g} s "
                "(only its end is needed to continue it)"
            )
        if info.duration_s < 0.1:
            raise InvalidArgument("audio prompt is too short")
    return info


async def check_upload(store: BlobStore, key: str, role: str, limits: Limits) -> audio_files.AudioInfo:
    """Size, format, length (and for a melody: not silent, long enough) of an uploaded blob."""
    try:
        stat = await asyncio.to_thread(store.stat, key)
    except NotFound:
        raise NotFound(f"{role} blob {key} not found; upload the audio first") from None
    if stat.size > limits.max_upload_bytes:
        raise InvalidArgument(f"{role} upload is {stat.size} bytes; the limit is {limits.max_upload_bytes} bytes")
    data = await asyncio.to_thread(store.get_bytes, key)
    return await asyncio.to_thread(_check, data, role, limits)
