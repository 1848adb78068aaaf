"""Header sniffing, block decoding and streaming resampling."""

from __future__ import annotations

import struct
from pathlib import Path

import julius
import numpy as np
import pytest
import torch

from beatflow.common.errors import InvalidArgument
from beatflow.separator import audio_stream
from beatflow.separator.testsignals import encode, music_like


def sniff(data: bytes) -> audio_stream.HeaderInfo:
    return audio_stream.sniff_header(lambda a, b: data[a : b + 1], len(data))


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24")])
def test_sniff_reads_rate_channels_and_length(fmt: str, subtype: str) -> None:
    data = encode(music_like(1.5, 48000), 48000, fmt, subtype)
    info = sniff(data)
    assert info.container == fmt.lower()
    assert (info.sample_rate, info.channels, info.frames) == (48000, 2, 72000)


def test_sniff_walks_past_large_chunks_before_data() -> None:
    wav = encode(music_like(0.5, 44100), 44100, "WAV", "PCM_16")
    junk = b"LIST" + struct.pack("<I", 100_000) + b"\x00" * 100_000
    data = wav[:12] + junk + wav[12:]
    data = data[:4] + struct.pack("<I", len(data) - 8) + data[8:]
    assert sniff(data).frames == 22050


@pytest.mark.parametrize(
    "data",
    [b"", b"RIFF", b"\x00" * 100, b"<html>not audio</html>" * 5, b"fLaC\x00\x00\x00\x22" + b"\x00" * 34],
)
def test_sniff_refuses_non_audio(data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        sniff(data)


def test_stream_resampler_matches_one_shot_julius() -> None:
    rng = np.random.default_rng(0)
    for old, new in [(22050, 44100), (48000, 44100), (8000, 44100)]:
        x = rng.standard_normal((old + 777, 2)).astype(np.float32)
        r = audio_stream.StreamResampler(old, new, 2)
        parts, i = [], 0
        while i < len(x):
            step = int(rng.integers(1, 9000))
            parts.append(r.process(x[i : i + step]))
            i += step
        parts.append(r.flush())
        y = np.concatenate(parts)
        ref = julius.resample_frac(torch.from_numpy(x.T.copy()), old, new).numpy().T
        assert y.shape == ref.shape == ((len(x) * new) // old, 2)
        assert np.abs(y - ref).max() < 1e-5


def test_odd_rates_use_a_streaming_fallback() -> None:
    x = np.sin(np.arange(44099 * 2) * 2 * np.pi * 440 / 44099).astype(np.float32)[:, None]
    r = audio_stream.StreamResampler(44099, 44100, 1)
    y = np.concatenate([r.process(x[:30000]), r.process(x[30000:]), r.flush()])
    assert y.shape == (88200, 1)  # floor(88198 * 44100 / 44099)
    assert np.abs(y[1000:-1000, 0] - np.sin(np.arange(1000, 88200 - 1000) * 2 * np.pi * 440 / 44100)).max() < 1e-2


def test_prepare_mix_mono_22k_to_stereo_44k(tmp_path: Path) -> None:
    mono = music_like(2.0, 22050, channels=1)
    src = tmp_path / "in.wav"
    src.write_bytes(encode(mono, 22050, "WAV", "FLOAT"))
    mix = audio_stream.prepare_mix(src, tmp_path / "mix.f32", sample_rate=44100, channels=2)
    data = mix.open()[:]
    assert data.shape == (88200, 2)
    assert np.array_equal(data[:, 0], data[:, 1])
    assert mix.source.sample_rate == 22050 and mix.source.channels == 1
    with pytest.raises(InvalidArgument, match="over the limit"):
        audio_stream.prepare_mix(src, tmp_path / "m2.f32", sample_rate=44100, channels=2, max_duration_s=1.0)
