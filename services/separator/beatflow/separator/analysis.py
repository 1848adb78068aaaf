"""Audio analysis: tempo, key, loudness, peak — fast enough to run on every upload.

* Tempo: onset-strength envelope (librosa), autocorrelated; the best lag under a
  broad log-normal tempo prior is refined to sub-frame precision with the peaks
  at its multiples, then a half-period check picks the faster of two equally
  strong octave-related tempi (clicks on every beat look equally periodic at
  T and 2T). Confidence is the normalised autocorrelation at the chosen period.
* Key: constant-Q chroma averaged over the excerpt, correlated with the 24
  rotated Krumhansl–Kessler major/minor profiles; confidence is the softmax
  weight of the best key against the others.
* Loudness (BS.1770 integrated LUFS) and sample peak over the whole file.

Tempo and key look at a bounded excerpt (``max_analysis_s`` from the middle of
the track), so their cost does not grow with track length; loudness and peak
stream over everything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np

from beatflow.separator.audio_io import iter_blocks, open_audio
from beatflow.separator.loudness import LoudnessMeter

ANALYSIS_SR = 22050
HOP = 128  # onset envelope hop: 5.8 ms at 22.05 kHz
MIN_BPM, MAX_BPM = 40.0, 240.0
PRIOR_CENTER_BPM, PRIOR_OCTAVES = 120.0, 1.0
PITCHES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
# Krumhansl & Kessler (1982) probe-tone ratings.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
KEY_SOFTMAX_TEMPERATURE = 0.05


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Tempo:
    bpm: float
    confidence: float


@dataclass
class Key:
    tonic: str
    mode: str
    confidence: float
    scores: np.ndarray  # [24] correlations: 12 major (C..B) then 12 minor


def _parabolic(y: np.ndarray, i: int) -> float:
    """Sub-sample position of the peak at ``i`` from a parabola through its neighbours."""
    if i <= 0 or i >= len(y) - 1:
        return float(i)
    a, b, c = y[i - 1], y[i], y[i + 1]
    den = a - 2 * b + c
    return float(i) if den >= 0 else i + 0.5 * (a - c) / den


def _peak_near(ac: np.ndarray, center: float, radius: int) -> int:
    lo, hi = max(1, int(center) - radius), min(len(ac) - 1, int(center) + radius + 1)
    return lo + int(np.argmax(ac[lo:hi]))


def estimate_tempo(y: np.ndarray, sr: int = ANALYSIS_SR) -> Tempo:
    """Tempo of mono audio ``y`` in BPM with a 0..1 confidence (0 for aperiodic audio)."""
    if len(y) < sr * 2:
        return Tempo(0.0, 0.0)
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP, n_fft=1024, aggregate=np.median)
    env = env - env.mean()
    if not np.any(env):
        return Tempo(0.0, 0.0)
    n = len(env)
    spec = np.fft.rfft(env, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    if ac[0] <= 0:
        return Tempo(0.0, 0.0)
    ac = ac / ac[0]
    fps = sr / HOP
    lag_min = math.floor(60.0 * fps / MAX_BPM)
    lag_max = min(math.ceil(60.0 * fps / MIN_BPM), n // 2)
    if lag_max <= lag_min + 2:
        return Tempo(0.0, 0.0)
    lags = np.arange(lag_min, lag_max)
    bpms = 60.0 * fps / lags
    prior = np.exp(-0.5 * (np.log2(bpms / PRIOR_CENTER_BPM) / PRIOR_OCTAVES) ** 2)
    best = lag_min + int(np.argmax(np.clip(ac[lag_min:lag_max], 0, None) * prior))
    # Prefer the faster of two octave-related periods when it is about as periodic.
    half = _peak_near(ac, best / 2, 2)
    if half >= lag_min and ac[half] >= 0.8 * ac[best]:
        best = half
    # Refine: parabolic peaks at k * period for every multiple that fits, least squares through 0.
    ks, pos = [], []
    for k in range(1, 9):
        if k * best >= n // 2:
            break
        i = _peak_near(ac, k * best, max(2, k))
        ks.append(k)
        pos.append(_parabolic(ac, i))
    period = float(np.dot(ks, pos) / np.dot(ks, ks))
    confidence = float(np.clip(ac[best], 0.0, 1.0))
    return Tempo(60.0 * fps / period, confidence)


def estimate_key(y: np.ndarray, sr: int = ANALYSIS_SR) -> Key:
    """Key of mono audio ``y`` by chroma/profile correlation."""
    if len(y) < sr // 2 or not np.any(y):
        return Key("", "", 0.0, np.zeros(24))
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=2048, bins_per_octave=36)
    profile = chroma.mean(axis=1)
    if not np.any(profile):
        return Key("", "", 0.0, np.zeros(24))
    scores = np.empty(24)
    for mode, template in enumerate((MAJOR_PROFILE, MINOR_PROFILE)):
        for tonic in range(12):
            scores[mode * 12 + tonic] = np.corrcoef(profile, np.roll(template, tonic))[0, 1]
    scores = np.nan_to_num(scores)
    best = int(np.argmax(scores))
    weights = np.exp((scores - scores[best]) / KEY_SOFTMAX_TEMPERATURE)
    confidence = float(weights[best] / weights.sum())
    return Key(PITCHES[best % 12], "major" if best < 12 else "minor", confidence, scores)


def _mono_excerpt(path: str | Path, max_analysis_s: float, total_frames: int, sr: int) -> np.ndarray:
    """Up to ``max_analysis_s`` of mono audio at ANALYSIS_SR from the middle of the file."""
    want = int(max_analysis_s * sr)
    start = max(0, (total_frames - want) // 2)
    handle, _ = open_audio(path)
    with handle:
        if start:
            handle.seek(start)
        parts = [b.mean(axis=1) for b in iter_blocks(handle) if b.size]
        y = np.concatenate(parts)[:want] if parts else np.zeros(0, np.float32)
    if sr != ANALYSIS_SR and len(y):
        y = librosa.resample(y, orig_sr=sr, target_sr=ANALYSIS_SR, res_type="soxr_hq")
    return y.astype(np.float32)


def analyze_file(path: str | Path, *, max_duration_s: float | None = None, max_analysis_s: float = 120.0) -> Analysis:
    """Full analysis of an audio file; InvalidArgument if it is not usable audio."""
    handle, info = open_audio(path, max_duration_s=max_duration_s)
    meter = LoudnessMeter(info.sample_rate, info.channels)
    frames = 0
    with handle:
        for block in iter_blocks(handle):
            meter.add(block)
            frames += block.shape[0]
    y = _mono_excerpt(path, max_analysis_s, frames, info.sample_rate)
    tempo = estimate_tempo(y)
    key = estimate_key(y)
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
    )


def _finite(value: float, floor: float = -200.0) -> float:
    """Silence is reported as a very low number rather than -inf (JSON and protobuf stay simple)."""
    return round(value, 2) if math.isfinite(value) else floor
