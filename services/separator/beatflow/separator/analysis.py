"""Audio analysis: tempo, beats, key, loudness, peak — fast enough to run on every upload.

Tempo, beats/downbeats and key come from :mod:`beatflow.common.audioanalysis`
(shared with the generator, which conforms results to a requested tempo and
key); this module adds loudness (BS.1770 integrated LUFS) and sample peak over
the whole file, and reads the file.

Tempo, beats and key look at a bounded excerpt (``max_analysis_s`` from the
middle of the track), so their cost does not grow with track length; loudness
and peak stream over everything. Beat and downbeat times are seconds from the
start of the file and cover that excerpt (the whole file when it is shorter).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import librosa
import numpy as np

from beatflow.common.audioanalysis import (
    ANALYSIS_SR,
    HOP,
    KEY_SOFTMAX_TEMPERATURE,
    MAJOR_PROFILE,
    MAX_BPM,
    MIN_BPM,
    MINOR_PROFILE,
    PITCHES,
    PRIOR_CENTER_BPM,
    PRIOR_OCTAVES,
    Beats,
    Key,
    Tempo,
    estimate_beats,
    estimate_key,
    estimate_key_legacy,
    estimate_tempo,
)
from beatflow.separator.audio_stream import iter_blocks, open_audio
from beatflow.separator.loudness import LoudnessMeter

__all__ = [
    "ANALYSIS_SR",
    "HOP",
    "KEY_SOFTMAX_TEMPERATURE",
    "MAJOR_PROFILE",
    "MAX_BPM",
    "MINOR_PROFILE",
    "MIN_BPM",
    "PITCHES",
    "PRIOR_CENTER_BPM",
    "PRIOR_OCTAVES",
    "Analysis",
    "Beats",
    "Key",
    "Tempo",
    "analyze_file",
    "estimate_beats",
    "estimate_key",
    "estimate_key_legacy",
    "estimate_tempo",
]


@dataclass
class Analysis:
    bpm: float
    bpm_confidence: float
    key_tonic: str
    key_mode: str
    key_confidence: float
    duration_s: float
    sample_rate: int
    channels: int
    loudness_lufs: float
    peak_dbfs: float
    beat_times_s: list[float] = field(default_factory=list)
    downbeat_times_s: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mono_excerpt(path: str | Path, max_analysis_s: float, total_frames: int, sr: int) -> tuple[np.ndarray, float]:
    """Up to ``max_analysis_s`` of mono audio at ANALYSIS_SR from the middle of the file, and its start (s)."""
    want = int(max_analysis_s * sr)
    start = max(0, (total_frames - want) // 2)
    handle, _ = open_audio(path)
    with handle:
        if start:
            handle.seek(start)
        parts: list[np.ndarray] = []
        have = 0
        for block in iter_blocks(handle):  # stop at the excerpt's end, not the file's
            parts.append(block.mean(axis=1))
            have += block.shape[0]
            if have >= want:
                break
        y = np.concatenate(parts)[:want] if parts else np.zeros(0, np.float32)
    if sr != ANALYSIS_SR and len(y):
        y = librosa.resample(y, orig_sr=sr, target_sr=ANALYSIS_SR, res_type="soxr_hq")
    return y.astype(np.float32), start / sr


def analyze_file(path: str | Path, *, max_duration_s: float | None = None, max_analysis_s: float = 120.0) -> Analysis:
    """Full analysis of an audio file; InvalidArgument if it is not usable audio."""
    handle, info = open_audio(path, max_duration_s=max_duration_s)
    meter = LoudnessMeter(info.sample_rate, info.channels)
    frames = 0
    with handle:
        for block in iter_blocks(handle):
            meter.add(block)
            frames += block.shape[0]
    y, offset_s = _mono_excerpt(path, max_analysis_s, frames, info.sample_rate)
    tempo = estimate_tempo(y)
    key = estimate_key(y)
    beats = estimate_beats(y, bpm=tempo.bpm) if tempo.confidence > 0 else Beats(tempo.bpm, [], [])
    return Analysis(
        bpm=round(tempo.bpm, 2),
        bpm_confidence=round(tempo.confidence, 3),
        key_tonic=key.tonic,
        key_mode=key.mode,
        key_confidence=round(key.confidence, 3),
        duration_s=frames / info.sample_rate,
        sample_rate=info.sample_rate,
        channels=info.channels,
        loudness_lufs=_finite(meter.integrated),
        peak_dbfs=_finite(meter.peak_dbfs),
        beat_times_s=[round(offset_s + t, 3) for t in beats.beat_times_s],
        downbeat_times_s=[round(offset_s + t, 3) for t in beats.downbeat_times_s],
    )


def _finite(value: float, floor: float = -200.0) -> float:
    """Silence is reported as a very low number rather than -inf (JSON and protobuf stay simple)."""
    return round(value, 2) if math.isfinite(value) else floor
