"""Waveform peaks from a stored blob: exact min/max per bucket, in bounded memory."""

from __future__ import annotations

import io
import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from beatflow.common.blobstore import LocalBlobStore
from beatflow.gateway import peaks

RATE = 16000
MINUTES = 10


def _reference(audio: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max per bucket computed on the whole array in memory (the obvious way)."""
    edges = peaks.bucket_edges(len(audio), buckets)
    flat_min, flat_max = audio.min(axis=1), audio.max(axis=1)
    mins = np.array([flat_min[a:b].min() for a, b in itertools.pairwise(edges)])
    maxs = np.array([flat_max[a:b].max() for a, b in itertools.pairwise(edges)])
    return mins, maxs


@pytest.fixture(scope="module")
def long_take(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalBlobStore, str, np.ndarray]:
    """Ten minutes of 16-bit mono: a chirp with a loudness swell and a few spikes."""
    rng = np.random.default_rng(3)
    frames = RATE * 60 * MINUTES
    t = np.arange(frames, dtype=np.float64) / RATE
    envelope = 0.2 + 0.7 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 97.0))
    signal = envelope * np.sin(2 * np.pi * (110 + 3 * t) * t) + 0.01 * rng.standard_normal(frames)
    signal[rng.integers(0, frames, 50)] = rng.choice([-0.99, 0.99], 50)
    pcm = np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
    del t, envelope, signal
    path = tmp_path_factory.mktemp("peaks") / "long.wav"
    soundfile.write(path, pcm, RATE, subtype="PCM_16")
    store = LocalBlobStore(path.parent / "blobs")
    key = store.put_file(path, "audio/wav")
    decoded = (pcm.astype(np.float32) / 32768.0)[:, None]
    return store, key, decoded


def test_ten_minute_file_matches_numpy_min_max_per_bucket(long_take: tuple[LocalBlobStore, str, np.ndarray]) -> None:
    store, key, audio = long_take
    for buckets in (1, 777, 4000):
        result = peaks.compute(store, key, buckets)
        assert result.frames == len(audio) and result.sample_rate == RATE and result.channels == 1
        assert result.duration_s == pytest.approx(60 * MINUTES)
        want_min, want_max = _reference(audio, buckets)
        np.testing.assert_array_equal(result.mins, want_min)
        np.testing.assert_array_equal(result.maxs, want_max)


def test_memory_stays_bounded_on_a_long_file(long_take: tuple[LocalBlobStore, str, np.ndarray]) -> None:
    store, key, audio = long_take
    whole_decode = audio.nbytes  # what decoding the file at once would take (float32)
    tracemalloc.start()
    try:
        peaks.compute(store, key, 2000)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert whole_decode > 30_000_000
    assert peak < 8_000_000, f"peak {peak} bytes while computing peaks of {whole_decode} bytes of audio"


def test_stereo_flac_folds_channels_and_more_buckets_than_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    audio = rng.uniform(-0.9, 0.9, size=(300, 2)).astype(np.float32)
    buf = io.BytesIO()
    soundfile.write(buf, audio, 8000, format="FLAC", subtype="PCM_24")
    store = LocalBlobStore(tmp_path / "blobs")
    key = store.put_bytes(buf.getvalue(), "audio/flac")
    decoded, _ = soundfile.read(io.BytesIO(buf.getvalue()), dtype="float32", always_2d=True)
    result = peaks.compute(store, key, 50)
    want_min, want_max = _reference(decoded, 50)
    np.testing.assert_array_equal(result.mins, want_min)
    np.testing.assert_array_equal(result.maxs, want_max)
    assert result.channels == 2
    # Asking for more buckets than frames gives one bucket per frame.
    assert len(peaks.compute(store, key, 10_000).mins) == 300
    # The cache's byte form round-trips.
    again = peaks.Peaks.from_bytes(result.to_bytes())
    assert (again.sample_rate, again.channels, again.frames) == (8000, 2, 300)
    np.testing.assert_array_equal(again.mins, result.mins)
    np.testing.assert_array_equal(again.maxs, result.maxs)


def test_bytes_that_are_not_audio_are_refused(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = store.put_bytes(b"not audio at all" * 100)
    with pytest.raises(peaks.UndecodableAudio):
        peaks.compute(store, key, 100)


async def test_cache_outage_costs_only_a_recompute(tmp_path: Path) -> None:
    from beatflow.common.localservers import free_port
    from beatflow.gateway.routes.peaks import PeaksCache

    cache = PeaksCache(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    store = LocalBlobStore(tmp_path / "blobs")
    buf = io.BytesIO()
    soundfile.write(buf, np.zeros((100, 1), dtype=np.float32), 8000, format="WAV")
    value = peaks.compute(store, store.put_bytes(buf.getvalue()), 10)
    try:
        assert await cache.get("a" * 64, 10) is None
        await cache.put("a" * 64, 10, value)  # no error
        assert not cache._available()  # left alone for a while after the failure
    finally:
        await cache.close()
