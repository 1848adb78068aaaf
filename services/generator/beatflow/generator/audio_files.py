"""Audio files in and out: decode uploads of any common format and rate, encode results.

Decoding tries libsndfile (WAV, FLAC, OGG/Vorbis, Opus, MP3 with libsndfile
>= 1.1) and falls back to librosa/audioread for the rest. Encoding writes
16-bit WAV or FLAC with soundfile and MP3 with lameenc, at the model's rate.
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from beatflow.common.errors import InvalidArgument

log = logging.getLogger(__name__)

CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}
EXTENSIONS = {"wav": "wav", "flac": "flac", "mp3": "mp3"}


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(data: bytes) -> AudioInfo:
    """Rate, channels and length of encoded audio, without decoding all of it where possible."""
    try:
        info = sf.info(io.BytesIO(data))
        if info.frames > 0:
            return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    wav, rate = decode(data)
    return AudioInfo(rate, wav.shape[0], wav.shape[1])


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Encoded audio -> float32 ``(channels, samples)`` and its sample rate; InvalidArgument if unreadable."""
    if not data:
        raise InvalidArgument("audio is empty")
    try:
        wav, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return np.ascontiguousarray(wav.T), int(rate)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        first_error: Exception = exc
    try:
        import librosa

        with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
            tmp.write(data)
            tmp.flush()
            wav, rate = librosa.load(tmp.name, sr=None, mono=False)
        wav = np.atleast_2d(np.asarray(wav, dtype=np.float32))
        return wav, int(rate)
    except Exception as exc:  # any decoder failure means the upload is not audio we can read
        log.info("could not decode audio: %s / %s", first_error, exc)
        raise InvalidArgument(
            "could not decode the audio (supported: WAV, FLAC, OGG, MP3 and other common formats)"
        ) from exc


def resample(wav: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return wav
    import librosa

    return np.asarray(librosa.resample(wav, orig_sr=rate, target_sr=target, axis=-1), dtype=np.float32)


def to_channels(wav: np.ndarray, channels: int) -> np.ndarray:
    """Mix down to mono or duplicate mono to stereo."""
    if wav.shape[0] == channels:
        return wav
    if channels == 1:
        return wav.mean(axis=0, keepdims=True)
    return np.repeat(wav.mean(axis=0, keepdims=True), channels, axis=0)


def load_for_model(data: bytes, sample_rate: int, channels: int) -> np.ndarray:
    """Decode and convert to the model's rate and channel count: float32 ``(channels, samples)``."""
    wav, rate = decode(data)
    return to_channels(resample(wav, rate, sample_rate), channels)


def is_silent(wav: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the recording's RMS is below ``threshold_db`` dBFS (nothing to follow)."""
    if wav.size == 0:
        return True
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    return rms <= 10 ** (threshold_db / 20)


def encode(wav: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Float ``(channels, samples)`` -> encoded bytes in ``fmt`` (wav, flac or mp3), 16-bit."""
    pcm = np.clip(wav, -1.0, 1.0).T  # (samples, channels)
    if fmt in ("wav", "flac"):
        buf = io.BytesIO()
        sf.write(buf, pcm, sample_rate, format=fmt.upper(), subtype="PCM_16")
        return buf.getvalue()
    if fmt == "mp3":
        import lameenc

        enc = lameenc.Encoder()
        enc.set_bit_rate(192)
        enc.set_in_sample_rate(sample_rate)
        enc.set_channels(pcm.shape[1])
        enc.set_quality(2)
        ints = (pcm * 32767.0).round().astype("<i2")
        return bytes(enc.encode(ints.tobytes()) + enc.flush())
    raise InvalidArgument(f"unknown audio format {fmt!r}; use wav, flac or mp3")
