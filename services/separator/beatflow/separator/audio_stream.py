"""Audio in and out without torchaudio: header sniffing, block decoding, streaming
resampling and stem writing.

Everything here works block by block, so memory stays flat however long the
track is: the decoder yields fixed-size blocks, the resampler carries only the
filter's context between blocks, and stems are written to files as they are
finished.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import julius
import numpy as np
import soundfile as sf
import torch

from beatflow.common.errors import InvalidArgument

SNIFF_BYTES = 64 * 1024
MAX_CHANNELS = 32
MIN_RATE = 1000
MAX_RATE = 384_000
BLOCK_FRAMES = 1 << 16
FORMATS = ("wav", "flac")


@dataclass
class HeaderInfo:
    """What the header says, before decoding anything."""

    container: str  # wav, flac, mp3, ogg, aiff, ...
    sample_rate: int | None = None
    channels: int | None = None
    frames: int | None = None

    @property
    def duration_s(self) -> float | None:
        if self.frames is None or not self.sample_rate:
            return None
        return self.frames / self.sample_rate


def _check_format_fields(container: str, rate: int, channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise InvalidArgument(f"{container} header declares {channels} channels (allowed 1..{MAX_CHANNELS})")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidArgument(
            f"{container} header declares a sample rate of {rate} Hz (allowed {MIN_RATE}..{MAX_RATE})"
        )


def _sniff_wav(read: Callable[[int, int], bytes], size: int, head: bytes) -> HeaderInfo:
    """Walk the RIFF chunks (reading only chunk headers) to find fmt and data."""
    pos = 12
    fmt: tuple[int, int, int, int] | None = None  # tag, channels, rate, block_align
    for _ in range(256):
        if pos + 8 > size:
            break
        hdr = head[pos : pos + 8] if pos + 8 <= len(head) else read(pos, pos + 7)
        if len(hdr) < 8:
            break
        cid, csize = hdr[:4], struct.unpack("<I", hdr[4:8])[0]
        if cid == b"fmt ":
            if csize < 16:
                raise InvalidArgument(f"WAV fmt chunk is {csize} bytes (at least 16 expected)")
            body = head[pos + 8 : pos + 24] if pos + 24 <= len(head) else read(pos + 8, pos + 23)
            if len(body) < 16:
                raise InvalidArgument("WAV file is truncated inside its fmt chunk")
            tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", body)
            _check_format_fields("WAV", rate, channels)
            if bits == 0 or bits > 64 or block_align == 0:
                raise InvalidArgument(f"WAV header declares {bits}-bit samples in {block_align}-byte frames")
            fmt = (tag, channels, rate, block_align)
        elif cid == b"data":
            if fmt is None:
                raise InvalidArgument("WAV data chunk comes before its fmt chunk")
            available = size - pos - 8
            declared = csize
            if declared in (0, 0xFFFFFFFF):  # written by a streaming encoder: length unknown
                declared = available
            if declared > available:
                raise InvalidArgument(
                    f"WAV file is truncated or its header is wrong: the data chunk declares {declared} bytes "
                    f"but only {available} follow"
                )
            frames = declared // fmt[3]
            if frames == 0:
                raise InvalidArgument("WAV file holds no audio frames")
            return HeaderInfo("wav", sample_rate=fmt[2], channels=fmt[1], frames=frames)
        if csize > size:
            raise InvalidArgument(f"WAV chunk {cid!r} declares {csize} bytes, more than the whole file ({size})")
        pos += 8 + csize + (csize & 1)
    raise InvalidArgument("WAV file has no data chunk (truncated or not a WAV file)")


def _sniff_flac(head: bytes, size: int) -> HeaderInfo:
    if len(head) < 42:
        raise InvalidArgument("FLAC file is truncated inside its STREAMINFO block")
    block_type = head[4] & 0x7F
    length = int.from_bytes(head[5:8], "big")
    if block_type != 0 or length != 34:
        raise InvalidArgument("FLAC file does not start with a valid STREAMINFO block")
    info = int.from_bytes(head[18:26], "big")
    rate = info >> 44
    channels = ((info >> 41) & 0x7) + 1
    bits = ((info >> 36) & 0x1F) + 1
    frames = info & ((1 << 36) - 1)
    _check_format_fields("FLAC", rate, channels)
    if bits < 4:
        raise InvalidArgument(f"FLAC header declares {bits}-bit samples")
    if frames:
        # Even perfectly compressed FLAC cannot beat ~1 byte per 4096-sample block per channel.
        if frames / 4096 * channels > size * 8:
            raise InvalidArgument(f"FLAC header declares {frames} frames, impossible in a {size}-byte file")
    return HeaderInfo("flac", sample_rate=rate, channels=channels, frames=frames or None)


def sniff_header(read: Callable[[int, int], bytes], size: int) -> HeaderInfo:
    """Identify the container and check its header fields without decoding audio.

    ``read(start, end_inclusive)`` fetches bytes of the blob; ``size`` is its length.
    Raises InvalidArgument for empty, unknown, truncated or absurd files.
    """
    if size <= 0:
        raise InvalidArgument("the audio upload is empty")
    head = read(0, min(size, SNIFF_BYTES) - 1)
    if len(head) < 12:
        raise InvalidArgument(f"the upload is {size} bytes, too short to be audio")
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        if head[:4] == b"RIFX":
            raise InvalidArgument("big-endian WAV (RIFX) is not supported")
        return _sniff_wav(read, size, head)
    if head[:4] == b"RF64" and head[8:12] == b"WAVE":
        return HeaderInfo("wav")
    if head[:4] == b"fLaC":
        return _sniff_flac(head, size)
    if head[:4] == b"OggS":
        return HeaderInfo("ogg")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return HeaderInfo("aiff")
    if head[:3] == b"ID3" or (head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return HeaderInfo("mp3")
    if head[:4] == b"caff":
        return HeaderInfo("caf")
    if head[4:8] == b"ftyp":
        raise InvalidArgument("MP4/M4A/AAC audio is not supported; upload WAV, FLAC, MP3, OGG or AIFF")
    raise InvalidArgument("not a supported audio file (expected WAV, FLAC, MP3, OGG/Vorbis/Opus, AIFF or CAF)")


@dataclass
class DecodedInfo:
    sample_rate: int
    channels: int
    frames: int
    container: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def open_audio(path: str | Path, *, max_duration_s: float | None = None) -> tuple[sf.SoundFile, DecodedInfo]:
    """Open a file for block decoding; InvalidArgument if it is not decodable audio."""
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InvalidArgument(f"not decodable audio: {exc}") from None
    info = DecodedInfo(handle.samplerate, handle.channels, handle.frames, handle.format.lower())
    try:
        _check_format_fields(info.container.upper(), info.sample_rate, info.channels)
        if info.frames <= 0:
            raise InvalidArgument("the audio holds no frames")
        if max_duration_s is not None and info.duration_s > max_duration_s:
            raise InvalidArgument(f"audio is {info.duration_s:.0f} s long, over the limit of {max_duration_s:.0f} s")
    except InvalidArgument:
        handle.close()
        raise
    return handle, info


def iter_blocks(handle: sf.SoundFile, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Decoded float32 blocks ``[frames, channels]``; decoding errors become InvalidArgument."""
    total = 0
    while True:
        try:
            block = handle.read(block_frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise InvalidArgument(f"audio is corrupted after {total} frames: {exc}") from None
        if block.shape[0] == 0:
            break
        if not np.isfinite(block).all():
            raise InvalidArgument("audio contains NaN or infinite samples")
        total += block.shape[0]
        yield block
    if total == 0:
        raise InvalidArgument("the audio holds no decodable frames")


def adapt_channels(block: np.ndarray, channels: int) -> np.ndarray:
    """Mono is duplicated; more channels than wanted keeps the first ones (front left/right)."""
    have = block.shape[1]
    if have == channels:
        return block
    if have == 1:
        return np.repeat(block, channels, axis=1)
    if have > channels:
        return block[:, :channels]
    raise InvalidArgument(f"cannot map {have} channels onto {channels}")


class StreamResampler:
    """Resamples an endless signal block by block, matching a one-shot resample.

    Uses julius' windowed-sinc resampler on the buffered block plus enough past
    context that every emitted sample saw exactly the input a one-shot resample
    of the whole signal would have (up to float rounding). Rate pairs whose
    reduced ratio is large (odd rates) use soxr's streaming resampler instead,
    since julius' filter bank grows with that ratio.
    """

    def __init__(self, old_sr: int, new_sr: int, channels: int) -> None:
        self.old_sr, self.new_sr, self.channels = old_sr, new_sr, channels
        gcd = math.gcd(old_sr, new_sr)
        self.o, self.n = old_sr // gcd, new_sr // gcd
        self.identity = old_sr == new_sr
        self._soxr = None
        self._julius: julius.ResampleFrac | None = None
        if not self.identity and max(self.o, self.n) > 2000:
            import soxr

            self._soxr = soxr.ResampleStream(old_sr, new_sr, channels, dtype="float32", quality="HQ")
        elif not self.identity:
            self._julius = julius.ResampleFrac(old_sr, new_sr)
            self._margin = int(self._julius._width) + self.o + 2  # input samples of context
        self._buf = np.zeros((0, channels), dtype=np.float32)
        self._buf_start = 0  # global input index of _buf[0], a multiple of o
        self._in_total = 0
        self._emitted = 0

    def _run_julius(self, buf: np.ndarray) -> np.ndarray:
        assert self._julius is not None
        with torch.no_grad():
            y = self._julius(torch.from_numpy(np.ascontiguousarray(buf.T)), full=True)
        return np.ascontiguousarray(y.numpy().T)

    def process(self, block: np.ndarray) -> np.ndarray:
        self._in_total += block.shape[0]
        if self.identity:
            self._emitted += block.shape[0]
            return block
        if self._soxr is not None:
            out = self._soxr.resample_chunk(block, last=False)
            self._emitted += out.shape[0]
            return np.asarray(out, dtype=np.float32)
        self._buf = np.concatenate([self._buf, block]) if self._buf.size else block
        buf_end = self._buf_start + self._buf.shape[0]
        ready = ((buf_end - self._margin) * self.n) // self.o  # outputs whose inputs are all here
        if ready <= self._emitted:
            return np.zeros((0, self.channels), dtype=np.float32)
        y = self._run_julius(self._buf)
        first = self._buf_start * self.n // self.o
        out = y[self._emitted - first : ready - first]
        self._emitted = ready
        keep_from = ((ready * self.o) // self.n - self._margin) // self.o * self.o
        keep_from = max(keep_from, self._buf_start)
        self._buf = self._buf[keep_from - self._buf_start :]
        self._buf_start = keep_from
        return out

    @property
    def total_out(self) -> int:
        return (self._in_total * self.n) // self.o

    def flush(self) -> np.ndarray:
        """The remaining samples; the total is ``floor(frames * new_sr / old_sr)``."""
        if self.identity:
            return np.zeros((0, self.channels), dtype=np.float32)
        remaining = self.total_out - self._emitted
        if self._soxr is not None:
            out = np.asarray(self._soxr.resample_chunk(np.zeros((0, self.channels), np.float32), last=True))
            out = out[: max(remaining, 0)]
            if out.shape[0] < remaining:
                out = np.concatenate([out, np.zeros((remaining - out.shape[0], self.channels), np.float32)])
            self._emitted += remaining
            return out.astype(np.float32)
        if remaining <= 0 or self._buf.shape[0] == 0:
            return np.zeros((0, self.channels), dtype=np.float32)
        y = self._run_julius(self._buf)
        first = self._buf_start * self.n // self.o
        out = y[self._emitted - first : self.total_out - first]
        self._emitted = self.total_out
        return out


@dataclass
class PreparedMix:
    """The mix at the model's rate and channel count, as a raw float32 file on disk."""

    path: Path
    frames: int
    channels: int
    sample_rate: int
    source: DecodedInfo
    mean: float  # of the mono downmix, for demucs' input normalisation
    std: float

    def open(self) -> RawFrames:
        return RawFrames(self.path, self.frames, self.channels)


class RawFrames:
    """Read-only ``[frames, channels]`` float32 view of a raw file, read with ``pread`` per slice.

    Unlike a memmap, the pages it has read do not stay mapped into the process,
    so resident memory does not grow with the track length.
    """

    def __init__(self, path: Path, frames: int, channels: int) -> None:
        self.path = path
        self.shape = (frames, channels)
        self._fd = os.open(path, os.O_RDONLY)

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("RawFrames supports contiguous row slices only")
        start, stop, _ = index.indices(self.shape[0])
        count = max(0, stop - start)
        frame_bytes = 4 * self.shape[1]
        data = os.pread(self._fd, count * frame_bytes, start * frame_bytes)
        return np.frombuffer(data, dtype=np.float32).reshape(count, self.shape[1])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def prepare_mix(
    src: str | Path,
    dst: str | Path,
    *,
    sample_rate: int,
    channels: int,
    max_duration_s: float | None = None,
    on_block: Callable[[int], None] | None = None,
) -> PreparedMix:
    """Decode ``src`` block by block, map channels, resample, and write raw float32 frames to ``dst``."""
    handle, info = open_audio(src, max_duration_s=max_duration_s)
    resampler = StreamResampler(info.sample_rate, sample_rate, channels)
    frames = 0
    s1 = s2 = 0.0
    with handle, open(dst, "wb") as out:

        def emit(block: np.ndarray) -> None:
            nonlocal frames, s1, s2
            if block.shape[0] == 0:
                return
            block = np.ascontiguousarray(block, dtype=np.float32)
            mono = block.mean(axis=1, dtype=np.float64)
            s1 += float(mono.sum())
            s2 += float((mono * mono).sum())
            frames += block.shape[0]
            out.write(block.tobytes())

        decoded = 0
        for block in iter_blocks(handle):
            decoded += block.shape[0]
            emit(resampler.process(adapt_channels(block, channels)))
            if on_block is not None:
                on_block(decoded)
        emit(resampler.flush())
    if frames == 0:
        raise InvalidArgument("the audio is too short to resample")
    mean = s1 / frames
    std = math.sqrt(max(s2 / frames - mean * mean, 0.0))
    return PreparedMix(Path(dst), frames, channels, sample_rate, info, mean, std)


class StemWriter:
    """Writes one stem file incrementally: float32 WAV, or 24-bit FLAC (clipped to full scale)."""

    CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac"}

    def __init__(self, path: str | Path, fmt: str, sample_rate: int, channels: int) -> None:
        if fmt not in FORMATS:
            raise InvalidArgument(f"stem format must be one of {FORMATS}, not {fmt!r}")
        self.fmt = fmt
        self.path = Path(path)
        subtype = "FLOAT" if fmt == "wav" else "PCM_24"
        self._file = sf.SoundFile(
            str(path), "w", samplerate=sample_rate, channels=channels, format=fmt.upper(), subtype=subtype
        )
        self.frames = 0

    def write(self, block: np.ndarray) -> None:
        """``block`` is ``[frames, channels]`` float32."""
        if self.fmt == "flac":
            block = np.clip(block, -1.0, 1.0 - 2.0**-23)
        self._file.write(block)
        self.frames += block.shape[0]

    def close(self) -> None:
        self._file.close()
