"""Type from magic bytes and duration from headers agree with what libsndfile decodes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from beatflow.common.audioformat import (
    FLAC,
    MP3,
    OGG,
    WAV,
    UnreadableAudio,
    header_from_prefix,
    parse_mpeg_frame,
    read_header,
    sniff,
)

CASES = [
    ("WAV", "PCM_16", WAV, 0.0005),
    ("WAV", "FLOAT", WAV, 0.0005),
    ("FLAC", "PCM_16", FLAC, 0.0005),
    ("OGG", "VORBIS", OGG, 0.01),
    ("OGG", "OPUS", OGG, 0.03),
    ("MP3", "MPEG_LAYER_III", MP3, 0.08),
]


def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono] * channels, axis=1).astype(np.float32)


@pytest.mark.parametrize(("fmt", "subtype", "kind", "tolerance"), CASES)
@pytest.mark.parametrize(("seconds", "rate", "channels"), [(1.5, 48000, 2), (3.25, 24000, 1)])
def test_header_matches_decoded_audio(
    tmp_path: Path, fmt: str, subtype: str, kind: object, tolerance: float, seconds: float, rate: int, channels: int
) -> None:
    path = tmp_path / "clip.bin"  # the name says nothing about the type
    sf.write(path, _tone(seconds, rate, channels), rate, format=fmt, subtype=subtype)
    decoded = sf.info(str(path))
    with open(path, "rb") as fh:
        assert sniff(fh.read(65536)) is kind
        header = read_header(fh)
    assert header.type is kind
    assert header.channels == channels
    assert header.duration_s == pytest.approx(decoded.duration, abs=max(tolerance * seconds, 0.03))
    if kind is not OGG or subtype != "OPUS":
        assert header.sample_rate == rate


def test_not_audio_is_refused(tmp_path: Path) -> None:
    for name, payload in [
        ("song.wav", b"<html><script>alert(1)</script></html>"),
        ("x.mp3", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        ("y.flac", b"RIFF\x00\x00\x00\x00AVI LIST"),
        ("z.ogg", b"\xff\xfb"),  # a lone sync word without a following frame
    ]:
        path = tmp_path / name
        path.write_bytes(payload)
        with open(path, "rb") as fh, pytest.raises(UnreadableAudio):
            read_header(fh)


def test_wav_streamed_writer_sizes_use_the_file_length(tmp_path: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, _tone(2.0, 8000, 1), 8000, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    pos = data.index(b"data")
    data[pos + 4 : pos + 8] = b"\xff\xff\xff\xff"  # as a streaming writer leaves it
    path = tmp_path / "streamed"
    path.write_bytes(bytes(data))
    with open(path, "rb") as fh:
        assert read_header(fh).duration_s == pytest.approx(2.0, abs=1e-3)


def test_truncated_headers_are_unreadable(tmp_path: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, _tone(1.0, 8000, 1), 8000, format="FLAC")
    path = tmp_path / "cut"
    path.write_bytes(buf.getvalue()[:12])
    with open(path, "rb") as fh, pytest.raises(UnreadableAudio):
        read_header(fh)


def test_header_from_prefix_of_a_stored_blob() -> None:
    buf = io.BytesIO()
    sf.write(buf, _tone(2.5, 16000, 2), 16000, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    kind, duration = header_from_prefix(data[:4096], len(data))
    assert kind is WAV
    assert duration == pytest.approx(2.5, abs=1e-3)
    assert header_from_prefix(b"not audio", 9) == (None, None)


def test_mpeg_frame_header_fields() -> None:
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding, joint stereo.
    frame = parse_mpeg_frame(bytes([0xFF, 0xFB, 0x90, 0x64]))
    assert frame is not None
    assert (frame.version, frame.layer, frame.bitrate, frame.sample_rate) == (1, 3, 128000, 44100)
    assert frame.length == 417
    assert frame.samples == 1152
    assert parse_mpeg_frame(bytes([0xFF, 0xFB, 0xF0, 0x64])) is None  # bitrate index 15 is invalid


def test_wav_duration_ignores_a_forged_byte_rate(tmp_path: Path) -> None:
    """The duration limit cannot be dodged by a huge byte rate in the fmt chunk: decoders ignore it."""
    buf = io.BytesIO()
    sf.write(buf, _tone(2.0, 8000, 1), 8000, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    fmt = data.index(b"fmt ")
    data[fmt + 16 : fmt + 20] = (0xFFFFFFFF).to_bytes(4, "little")  # byte rate
    path = tmp_path / "forged"
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).duration == pytest.approx(2.0)
    with open(path, "rb") as fh:
        assert read_header(fh).duration_s == pytest.approx(2.0, abs=1e-3)
