"""Audio type from content and duration from headers, without decoding.

Uploads are judged by their bytes, never their file name: the container's magic
number picks the type (RIFF/WAVE, fLaC, ID3 or an MPEG frame sync, OggS), and
the duration comes from the header fields (WAV data size / byte rate, FLAC
STREAMINFO, MP3 Xing/Info frame count or constant bit rate, Ogg last granule
position), so an over-long upload is refused before any decoder runs.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class AudioType:
    name: str  # wav, flac, mp3, ogg
    content_type: str
    extension: str


WAV = AudioType("wav", "audio/wav", "wav")
FLAC = AudioType("flac", "audio/flac", "flac")
MP3 = AudioType("mp3", "audio/mpeg", "mp3")
OGG = AudioType("ogg", "audio/ogg", "ogg")
BY_EXTENSION = {t.extension: t for t in (WAV, FLAC, MP3, OGG)}
BY_CONTENT_TYPE = {t.content_type: t for t in (WAV, FLAC, MP3, OGG)}


class UnreadableAudio(ValueError):
    """The bytes are not audio of a supported type, or its header is broken."""


def _id3_size(head: bytes) -> int:
    """Length of a leading ID3v2 tag (header + body + footer), 0 if none."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = 0
    for b in head[6:10]:
        if b & 0x80:
            raise UnreadableAudio("bad ID3 tag size")
        size = (size << 7) | b
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


# MPEG audio frame header tables: (version, layer) -> bitrates in kbit/s.
_BITRATES = {
    (1, 1): [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    (1, 2): [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    (1, 3): [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    (2, 1): [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    (2, 2): [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    (2, 3): [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
_SAMPLE_RATES = {1: [44100, 48000, 32000], 2: [22050, 24000, 16000], 25: [11025, 12000, 8000]}


@dataclass(frozen=True)
class MpegFrame:
    version: int  # 1, 2 or 25 (2.5)
    layer: int
    bitrate: int  # bit/s
    sample_rate: int
    channels: int
    length: int  # bytes

    @property
    def samples(self) -> int:
        if self.layer == 1:
            return 384
        if self.layer == 2 or self.version == 1:
            return 1152
        return 576


def parse_mpeg_frame(header: bytes) -> MpegFrame | None:
    """The MPEG audio frame whose 4-byte header this is, or None if it is not one."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version_bits = (header[1] >> 3) & 0x3
    layer_bits = (header[1] >> 1) & 0x3
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 0x3
    if version_bits == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    version = {3: 1, 2: 2, 0: 25}[version_bits]
    layer = 4 - layer_bits
    bitrate = _BITRATES[(1 if version == 1 else 2, layer)][bitrate_index] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (header[2] >> 1) & 0x1
    channels = 1 if (header[3] >> 6) == 3 else 2
    if layer == 1:
        length = (12 * bitrate // sample_rate + padding) * 4
    else:
        coefficient = 144 if (layer == 3 and version == 1) or layer == 2 else 72
        length = coefficient * bitrate // sample_rate + padding
    return MpegFrame(version, layer, bitrate, sample_rate, channels, length)


def sniff(head: bytes) -> AudioType | None:
    """The audio type these leading bytes start, or None."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[:4] == b"fLaC":
        return FLAC
    if head[:4] == b"OggS":
        return OGG
    offset = _id3_size(head) if head[:3] == b"ID3" else 0
    if head[:3] == b"ID3" and offset + 4 > len(head):
        return MP3  # a tag longer than the sniffed bytes (cover art); frames checked later
    frame = parse_mpeg_frame(head[offset : offset + 4])
    if frame is not None:
        # One sync word can happen by chance: require the next frame to follow.
        nxt = offset + frame.length
        if head[:3] == b"ID3" or nxt + 4 > len(head) or parse_mpeg_frame(head[nxt : nxt + 4]) is not None:
            return MP3
    return None


@dataclass(frozen=True)
class AudioHeader:
    type: AudioType
    duration_s: float
    sample_rate: int
    channels: int


def _file_size(fh: BinaryIO) -> int:
    return os.fstat(fh.fileno()).st_size


# PCM, IEEE float, A-law, mu-law and WAVE_FORMAT_EXTENSIBLE: fixed bytes per sample.
_LINEAR_WAV_TAGS = frozenset({0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE})


def _wav_header(fh: BinaryIO, size: int) -> AudioHeader:
    fh.seek(12)
    fmt: tuple[int, int, int, int] | None = None
    while True:
        chunk = fh.read(8)
        if len(chunk) < 8:
            raise UnreadableAudio("WAV without a data chunk")
        cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            body = fh.read(min(clen, 64))
            if len(body) < 16:
                raise UnreadableAudio("WAV fmt chunk too short")
            tag, channels, rate, byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
            if tag in _LINEAR_WAV_TAGS:
                # Decoders size a frame from the sample width; the stated byte
                # rate is redundant and may lie (a huge one hides the duration).
                byte_rate = rate * channels * ((bits + 7) // 8)
            fmt = (channels, rate, byte_rate, 0)
            fh.seek(clen - len(body) + (clen & 1), os.SEEK_CUR)
        elif cid == b"data":
            if fmt is None:
                raise UnreadableAudio("WAV data before fmt")
            channels, rate, byte_rate, _ = fmt
            if channels == 0 or rate == 0 or byte_rate == 0:
                raise UnreadableAudio("WAV fmt has zero rate or channels")
            available = size - fh.tell()
            # Streamed writers leave 0 or 0xFFFFFFFF: use what the file holds.
            data_len = available if clen in (0, 0xFFFFFFFF) else min(clen, available)
            return AudioHeader(WAV, data_len / byte_rate, rate, channels)
        else:
            fh.seek(clen + (clen & 1), os.SEEK_CUR)
        if fh.tell() > size:
            raise UnreadableAudio("WAV chunk runs past the end")


def _flac_header(fh: BinaryIO) -> AudioHeader:
    fh.seek(4)
    block = fh.read(4)
    if len(block) < 4 or block[0] & 0x7F != 0:
        raise UnreadableAudio("FLAC without STREAMINFO")
    info = fh.read(34)
    if len(info) < 18:
        raise UnreadableAudio("FLAC STREAMINFO too short")
    bits = int.from_bytes(info[10:18], "big")
    rate = bits >> 44
    channels = ((bits >> 41) & 0x7) + 1
    total = bits & ((1 << 36) - 1)
    if rate == 0:
        raise UnreadableAudio("FLAC sample rate is zero")
    if total == 0:
        raise UnreadableAudio("FLAC header does not state its length")
    return AudioHeader(FLAC, total / rate, rate, channels)


def _mp3_header(fh: BinaryIO, size: int) -> AudioHeader:
    fh.seek(0)
    head = fh.read(10)
    offset = _id3_size(head)
    fh.seek(offset)
    window = fh.read(SNIFF_BYTES)
    # Find the first frame whose successor also parses (skips junk after tags).
    frame = None
    start = 0
    for i in range(max(0, len(window) - 4)):
        candidate = parse_mpeg_frame(window[i : i + 4])
        if candidate is None:
            continue
        nxt = i + candidate.length
        if nxt + 4 > len(window) or parse_mpeg_frame(window[nxt : nxt + 4]) is not None:
            frame, start = candidate, i
            break
    if frame is None:
        raise UnreadableAudio("no MPEG audio frame found")
    # Xing/Info (VBR) header: frame count in the first frame's side data.
    if frame.version == 1:
        side = 32 if frame.channels == 2 else 17
    else:
        side = 17 if frame.channels == 2 else 9
    tag_at = start + 4 + side
    tag = window[tag_at : tag_at + 12]
    if tag[:4] in (b"Xing", b"Info") and len(tag) >= 12 and struct.unpack(">I", tag[4:8])[0] & 0x1:
        frames = struct.unpack(">I", tag[8:12])[0]
        return AudioHeader(MP3, frames * frame.samples / frame.sample_rate, frame.sample_rate, frame.channels)
    vbri_at = start + 4 + 32
    if window[vbri_at : vbri_at + 4] == b"VBRI" and len(window) >= vbri_at + 18:
        frames = struct.unpack(">I", window[vbri_at + 14 : vbri_at + 18])[0]
        return AudioHeader(MP3, frames * frame.samples / frame.sample_rate, frame.sample_rate, frame.channels)
    audio_bytes = size - offset - start
    return AudioHeader(MP3, audio_bytes * 8 / frame.bitrate, frame.sample_rate, frame.channels)


def _ogg_header(fh: BinaryIO, size: int) -> AudioHeader:
    fh.seek(0)
    page = fh.read(SNIFF_BYTES)
    if len(page) < 27:
        raise UnreadableAudio("Ogg page too short")
    segments = page[26]
    body = page[27 + segments :]
    if body[:7] == b"\x01vorbis" and len(body) >= 16:
        channels = body[11]
        rate = struct.unpack("<I", body[12:16])[0]
        pre_skip = 0
    elif body[:8] == b"OpusHead" and len(body) >= 12:
        channels = body[9]
        pre_skip = struct.unpack("<H", body[10:12])[0]
        rate = 48000  # Opus granule positions always count 48 kHz samples
    elif body[:5] == b"\x7fFLAC" and len(body) >= 13 + 34:
        info = int.from_bytes(body[13 + 4 + 10 : 13 + 4 + 18], "big")
        rate, channels, pre_skip = info >> 44, ((info >> 41) & 0x7) + 1, 0
    else:
        raise UnreadableAudio("Ogg stream is not Vorbis, Opus or FLAC")
    if rate == 0:
        raise UnreadableAudio("Ogg sample rate is zero")
    tail_len = min(size, SNIFF_BYTES)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    last = tail.rfind(b"OggS")
    if last < 0 or last + 14 > len(tail):
        raise UnreadableAudio("Ogg stream has no final page")
    granule = struct.unpack("<q", tail[last + 6 : last + 14])[0]
    if granule < 0:
        raise UnreadableAudio("Ogg final page has no granule position")
    return AudioHeader(OGG, max(0, granule - pre_skip) / rate, rate, channels)


def read_header(fh: BinaryIO) -> AudioHeader:
    """Type, duration, rate and channels of the audio file ``fh`` (seekable), from headers only."""
    size = _file_size(fh)
    fh.seek(0)
    kind = sniff(fh.read(SNIFF_BYTES))
    if kind is None:
        raise UnreadableAudio("not a WAV, FLAC, MP3 or Ogg file")
    try:
        if kind is WAV:
            return _wav_header(fh, size)
        if kind is FLAC:
            return _flac_header(fh)
        if kind is MP3:
            return _mp3_header(fh, size)
        return _ogg_header(fh, size)
    except struct.error:
        raise UnreadableAudio(f"truncated {kind.name} header") from None


def header_from_prefix(prefix: bytes, total_size: int) -> tuple[AudioType | None, float | None]:
    """Best-effort type and duration from a stored blob's first bytes (WAV and FLAC only)."""
    kind = sniff(prefix)
    try:
        if kind is WAV:
            return kind, _wav_header(io.BytesIO(prefix), total_size).duration_s
        if kind is FLAC:
            return kind, _flac_header(io.BytesIO(prefix)).duration_s
    except (UnreadableAudio, struct.error):
        pass
    return kind, None
