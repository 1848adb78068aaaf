"""Waveform peaks of a stored blob: min/max per bucket, decoded in blocks.

A waveform needs a few thousand numbers, not the audio: the blob is read
through a seekable range reader (never whole), libsndfile decodes it in blocks
of ``BLOCK_FRAMES`` frames, and each block folds into the running min/max of
the buckets it covers. Memory is a few blocks plus the buckets, whatever the
length of the audio. Channels are folded together (the min and max over all
channels), which is what one waveform row shows.

The answer follows audiowaveform's JSON layout (``data`` holds min, max pairs),
so existing players can draw it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile

from beatflow.common.blobstore import BlobStore

BLOCK_FRAMES = 65536
READ_AHEAD = 1024 * 1024
MAX_BUCKETS = 20000


class UndecodableAudio(ValueError):
    """libsndfile cannot decode the blob (unknown container or broken data)."""


@dataclass(frozen=True)
class Peaks:
    sample_rate: int
    channels: int
    frames: int
    mins: np.ndarray  # float32, one per bucket
    maxs: np.ndarray

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    def to_bytes(self) -> bytes:
        """Compact form for the cache: a small header, then interleaved float32 min/max."""
        header = np.array([self.sample_rate, self.channels, self.frames, len(self.mins)], dtype="<i8").tobytes()
        pairs = np.empty(2 * len(self.mins), dtype="<f4")
        pairs[0::2], pairs[1::2] = self.mins, self.maxs
        return header + pairs.tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Peaks:
        sample_rate, channels, frames, count = (int(v) for v in np.frombuffer(raw[:32], dtype="<i8"))
        pairs = np.frombuffer(raw[32:], dtype="<f4")
        if len(pairs) != 2 * count:
            raise ValueError("truncated peaks record")
        return cls(sample_rate, channels, frames, pairs[0::2].copy(), pairs[1::2].copy())


class BlobReader(io.RawIOBase):
    """A seekable, read-only file over a blob, fetched by byte ranges with a read-ahead window."""

    def __init__(self, store: BlobStore, key: str, size: int) -> None:
        super().__init__()
        self._store, self._key, self._size = store, key, size
        self._pos = 0
        self._window_start = 0
        self._window = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if self._pos >= self._size:
            return b""
        if size is None or size < 0:
            size = self._size - self._pos
        size = min(size, self._size - self._pos)
        offset = self._pos - self._window_start
        if not (0 <= offset and offset + size <= len(self._window)):
            length = max(size, READ_AHEAD)
            end = min(self._size, self._pos + length) - 1
            self._window = self._store.read_range(self._key, self._pos, end)
            self._window_start = self._pos
            offset = 0
        data = self._window[offset : offset + size]
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def bucket_edges(frames: int, buckets: int) -> np.ndarray:
    """Frame index where each bucket starts, plus ``frames`` at the end (buckets differ by at most one frame)."""
    return np.arange(buckets + 1, dtype=np.int64) * frames // buckets


def _fold_channels(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame min and max over channels (column by column: numpy's reduce over a short axis is slow)."""
    low = block[:, 0].copy()
    high = low.copy()
    for channel in range(1, block.shape[1]):
        np.minimum(low, block[:, channel], out=low)
        np.maximum(high, block[:, channel], out=high)
    return low, high


def compute_from_file(fileobj: io.RawIOBase | io.BufferedIOBase, buckets: int) -> Peaks:
    """Min/max of ``buckets`` equal spans of the audio, folded over channels, one block at a time."""
    try:
        sf = soundfile.SoundFile(fileobj)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UndecodableAudio(str(exc)) from None
    with sf:
        frames, sample_rate, channels = sf.frames, sf.samplerate, sf.channels
        if frames <= 0:
            raise UndecodableAudio("the audio holds no samples")
        buckets = max(1, min(buckets, frames))
        edges = bucket_edges(frames, buckets)
        mins = np.full(buckets, np.inf, dtype=np.float32)
        maxs = np.full(buckets, -np.inf, dtype=np.float32)
        pos = 0
        try:
            for block in sf.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
                length = len(block)
                if length == 0:
                    break
                length = min(length, frames - pos)
                if length <= 0:
                    break
                block = block[:length]
                low, high = _fold_channels(block)
                first = int(np.searchsorted(edges, pos, side="right")) - 1
                last = int(np.searchsorted(edges, pos + length - 1, side="right")) - 1
                starts = np.maximum(edges[first : last + 1], pos) - pos
                mins[first : last + 1] = np.minimum(mins[first : last + 1], np.minimum.reduceat(low, starts))
                maxs[first : last + 1] = np.maximum(maxs[first : last + 1], np.maximum.reduceat(high, starts))
                pos += length
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise UndecodableAudio(str(exc)) from None
    # A stream shorter than its header promised leaves the tail empty: show silence there.
    mins[~np.isfinite(mins)] = 0.0
    maxs[~np.isfinite(maxs)] = 0.0
    return Peaks(sample_rate, channels, frames, mins, maxs)


def compute(store: BlobStore, key: str, buckets: int) -> Peaks:
    """Peaks of a stored blob, read through range requests (never loaded whole)."""
    size = store.stat(key).size
    with BlobReader(store, key, size) as reader:
        return compute_from_file(reader, buckets)
