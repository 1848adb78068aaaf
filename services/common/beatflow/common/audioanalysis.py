"""Tempo, beats, downbeats and key of mono audio: pure numpy/librosa, shared by the services.

The separator reports these in its analysis; the generator uses them to conform
results to the requested tempo and key. Everything here works on a mono float
array at any rate (``ANALYSIS_SR`` is what the callers resample to).

* Tempo: onset-strength envelope (librosa), autocorrelated; the best lag under a
  broad log-normal tempo prior is refined to sub-frame precision with the peaks
  at its multiples, then a half-period check picks the faster of two equally
  strong octave-related tempi (clicks on every beat look equally periodic at
  T and 2T). Confidence is the normalised autocorrelation at the chosen period.
* Beats: at that tempo, the phase whose comb of beats carries the most onset
  energy, then each beat snapped to the strongest onset near where the previous
  beat predicts it (plain numpy: librosa's tracker is numba-compiled, which costs
  tens of seconds on the first call of every process).
  Downbeats (4/4 assumed): of the four beat phases, the one whose beats carry
  the most low-frequency onset energy (kick drums, bass notes) plus harmonic
  change (chords change on the bar line far more often than between).
* Key (:func:`estimate_key`): one constant-Q transform gives a bass chroma
  (C1–B2) and a treble chroma (C3 up). Each of the 24 keys is scored by three
  explainable terms:

  1. the treble chroma against Temperley's (Kostka–Payne) key profiles, whose
     minor profile weights the raised leading tone of harmonic minor above the
     flat seventh: a major V chord is normal in a minor key, so it no longer
     pulls the estimate to the parallel major;
  2. the bass chroma against a bass profile (tonic, then dominant and
     subdominant): bass notes sit on the tonic far more than on any other degree,
     which separates a key from its relative and from the key a fifth away;
  3. the quality of the tonic chord: where the bass is on the candidate tonic,
     is the third above it major or minor? This decides between parallel keys.

  Confidence is the softmax weight of the best key against the other 23 and a
  "no key" candidate with a fixed score, at a temperature calibrated on rendered
  chord progressions (``bench/analysis.py`` prints accuracy per confidence
  band): two keys that fit about equally well (I–V–I–V is also IV–I a fifth up)
  share the weight, and audio with little tonal evidence (noise, drums alone)
  loses it to "no key", so such guesses are reported as guesses.

:func:`estimate_key_legacy` is the previous estimator (mean CQT chroma against
the Krumhansl–Kessler profiles), kept so the benchmark compares both.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import librosa
import numpy as np

ANALYSIS_SR = 22050
HOP = 128  # onset envelope hop: 5.8 ms at 22.05 kHz
MIN_BPM, MAX_BPM = 40.0, 240.0
PRIOR_CENTER_BPM, PRIOR_OCTAVES = 120.0, 1.0
BEATS_PER_BAR = 4
ONSET_LAG_S = 0.007  # the onset envelope peaks this long after a sharp attack (measured on click tracks)
PITCHES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
# Krumhansl & Kessler (1982) probe-tone ratings (the legacy estimator).
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
KEY_SOFTMAX_TEMPERATURE = 0.05
# Temperley (2007), Kostka–Payne corpus: the minor profile has the raised 7th (0.330) above the flat 7th (0.133).
TEMPERLEY_MAJOR = np.array([0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400])
TEMPERLEY_MINOR = np.array([0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330])
# Where bass notes sit: mostly the tonic, then dominant and subdominant, then the other diatonic roots.
BASS_MAJOR = np.array([1.0, 0.0, 0.2, 0.0, 0.2, 0.5, 0.0, 0.6, 0.0, 0.35, 0.0, 0.05])
BASS_MINOR = np.array([1.0, 0.0, 0.15, 0.2, 0.0, 0.5, 0.0, 0.6, 0.35, 0.0, 0.25, 0.05])
BASS_WEIGHT = 1.0  # term 2 against term 1 (both correlations in -1..1)
THIRD_WEIGHT = 0.15  # term 3 (-1..1: minor third .. major third over the tonic)
KEY_TEMPERATURE = 0.1
# "No key" competes in the softmax with this fixed score: noise and drums alone score 0.3-0.65 (their
# chroma fits every profile a little), rendered chords 1.3-1.9, so toneless audio gets a low confidence.
NO_KEY_SCORE = 0.9


@dataclass
class Tempo:
    bpm: float
    confidence: float


@dataclass
class Key:
    tonic: str
    mode: str
    confidence: float
    scores: np.ndarray  # [24] scores: 12 major (C..B) then 12 minor
    terms: dict[str, np.ndarray] = field(default_factory=dict)  # the parts of the score, for explaining it

    @property
    def name(self) -> str:
        return f"{self.tonic} {self.mode}".strip()


@dataclass
class Beats:
    bpm: float
    beat_times_s: list[float]
    downbeat_times_s: list[float]


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


def _onset_envelope(y: np.ndarray, sr: int) -> np.ndarray:
    return librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP, n_fft=1024, aggregate=np.median)


def estimate_tempo(y: np.ndarray, sr: int = ANALYSIS_SR) -> Tempo:
    """Tempo of mono audio ``y`` in BPM with a 0..1 confidence (0 for aperiodic audio)."""
    if len(y) < sr * 2:
        return Tempo(0.0, 0.0)
    env = _onset_envelope(y, sr)
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


def estimate_beats(y: np.ndarray, sr: int = ANALYSIS_SR, bpm: float | None = None) -> Beats:
    """Beat and downbeat times (seconds from the start of ``y``); ``bpm`` defaults to :func:`estimate_tempo`'s."""
    if bpm is None:
        bpm = estimate_tempo(y, sr).bpm
    if bpm <= 0 or len(y) < sr:
        return Beats(bpm, [], [])
    env = _onset_envelope(y, sr)
    frames = _track_beats(env, 60.0 * sr / HOP / bpm)
    if len(frames) == 0:
        return Beats(bpm, [], [])
    times = np.maximum(0.0, librosa.frames_to_time(frames, sr=sr, hop_length=HOP) - ONSET_LAG_S)
    phase = _downbeat_phase(y, sr, times)
    beat_times = [round(float(t), 4) for t in times]
    return Beats(bpm, beat_times, beat_times[phase::BEATS_PER_BAR])


def _track_beats(env: np.ndarray, period: float) -> np.ndarray:
    """Beat frames at a known period: the comb phase with the most onset energy, then each beat
    snapped to the strongest onset near where the previous one predicts it (tempo drift allowed),
    weak beats at either end (silence, fades) dropped."""
    n = len(env)
    if n < 2 * period:
        return np.zeros(0, dtype=int)
    phases = np.arange(math.ceil(period))
    comb = [env[np.round(p + period * np.arange(int((n - 1 - p) / period) + 1)).astype(int)].mean() for p in phases]
    position = float(phases[int(np.argmax(comb))])
    radius = max(1, int(0.1 * period))
    beats = []
    while position < n:
        lo, hi = max(0, int(position) - radius), min(n, int(position) + radius + 1)
        offsets = np.arange(lo, hi)
        weight = np.exp(-0.5 * ((offsets - position) / (0.5 * radius)) ** 2)
        local = env[lo:hi] * weight
        snapped = lo + int(np.argmax(local)) if local.max() > 0 else min(n - 1, round(position))
        beats.append(snapped)
        position = snapped + period
    frames = np.array(beats, dtype=int)
    strength = env[frames]
    floor = 0.2 * np.median(strength)
    strong = np.flatnonzero(strength >= floor) if floor > 0 else np.arange(len(frames))
    if len(strong) == 0:
        return np.zeros(0, dtype=int)
    return frames[strong[0] : strong[-1] + 1]


def _downbeat_phase(y: np.ndarray, sr: int, beat_times: np.ndarray) -> int:
    """Which of the four beat phases starts the bar: loudness accents, bass onsets and chord changes there."""
    if len(beat_times) < BEATS_PER_BAR:
        return 0
    hop = 512
    spec = np.abs(librosa.stft(y, n_fft=2048, hop_length=hop))
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    low = spec[freqs < 200]
    low_flux = np.maximum(0.0, np.diff(np.log1p(100 * low), axis=1, prepend=0)).sum(axis=0)
    chroma = librosa.feature.chroma_stft(S=spec**2, sr=sr, n_fft=2048)
    chroma = chroma / (np.linalg.norm(chroma, axis=0, keepdims=True) + 1e-9)
    frames = librosa.time_to_frames(beat_times, sr=sr, hop_length=hop)
    frames = np.clip(frames, 0, spec.shape[1] - 1)
    # Harmonic change: chroma over the beat that starts here against the beat before it.
    bounds = np.append(frames, spec.shape[1])
    per_beat = np.stack([chroma[:, a : max(a + 1, b)].mean(axis=1) for a, b in itertools.pairwise(bounds)], axis=1)
    per_beat = per_beat / (np.linalg.norm(per_beat, axis=0, keepdims=True) + 1e-9)
    change = np.concatenate([[0.0], 1.0 - np.sum(per_beat[:, 1:] * per_beat[:, :-1], axis=0)])
    level = spec.sum(axis=0)
    low_onset = np.array([low_flux[max(0, f - 2) : f + 3].max() for f in frames])
    loud = np.array([level[max(0, f - 1) : f + 4].max() for f in frames])
    strength = sum(v / (v.max() + 1e-9) for v in (low_onset, loud, change))
    means = [strength[p::BEATS_PER_BAR].mean() for p in range(BEATS_PER_BAR)]
    return int(np.argmax(means))


def _cqt_chromas(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Bass (C1–B2) and treble (C3 up) chroma, ``[12, frames]`` each, from one tuned constant-Q transform."""
    tuning = float(librosa.estimate_tuning(y=y, sr=sr))
    octaves = min(7, math.floor(math.log2((sr / 2) / librosa.note_to_hz("C1"))))
    fmin = librosa.note_to_hz("C1") * 2 ** (-1 / 36)  # a third of a semitone below C1: bins are C-, C, C+, C#-...
    cqt = np.abs(
        librosa.cqt(y, sr=sr, hop_length=2048, fmin=fmin, n_bins=36 * octaves, bins_per_octave=36, tuning=tuning)
    )
    cqt = np.log1p(1000.0 * cqt / (cqt.max() + 1e-12))
    # [octave, semitone, 3 sub-bins, frames]: sum the sub-bins around each note.
    semis = cqt.reshape(octaves, 12, 3, -1).sum(axis=2)
    bass = semis[:2].sum(axis=0)
    treble = semis[2:].sum(axis=0)
    return bass, treble


def _corr(x: np.ndarray, profiles: np.ndarray) -> np.ndarray:
    """Pearson correlation of vector ``x`` with each row of ``profiles``."""
    xc = x - x.mean()
    pc = profiles - profiles.mean(axis=1, keepdims=True)
    den = np.linalg.norm(xc) * np.linalg.norm(pc, axis=1)
    return np.divide(pc @ xc, den, out=np.zeros(len(profiles)), where=den > 0)


def _rotations(profile: np.ndarray) -> np.ndarray:
    return np.stack([np.roll(profile, t) for t in range(12)])


def estimate_key(y: np.ndarray, sr: int = ANALYSIS_SR) -> Key:
    """Key of mono audio ``y``: profiles with the raised leading tone, bass and tonic-chord quality."""
    if len(y) < sr // 2 or not np.any(y):
        return Key("", "", 0.0, np.zeros(24))
    bass_frames, treble_frames = _cqt_chromas(y, sr)
    treble = treble_frames.mean(axis=1)
    bass = bass_frames.mean(axis=1)
    if not np.any(treble) and not np.any(bass):
        return Key("", "", 0.0, np.zeros(24))
    profile = np.concatenate([_rotations(TEMPERLEY_MAJOR), _rotations(TEMPERLEY_MINOR)])
    bass_profile = np.concatenate([_rotations(BASS_MAJOR), _rotations(BASS_MINOR)])
    profile_term = _corr(treble, profile)
    bass_term = _corr(bass, bass_profile)
    # Tonic-chord quality: treble chroma where the bass is on each candidate tonic; major minus minor third.
    share = bass_frames / (bass_frames.sum(axis=0, keepdims=True) + 1e-9)  # [12, frames]
    share = np.maximum(0.0, share - 1.0 / 12)  # only frames where that pitch stands out in the bass
    third = np.zeros(12)
    for t in range(12):
        if share[t].sum() <= 0:
            continue
        chord = (treble_frames * share[t]).sum(axis=1)
        major, minor = chord[(t + 4) % 12], chord[(t + 3) % 12]
        third[t] = (major - minor) / (major + minor + 1e-9)
    third_term = np.concatenate([third, -third])
    scores = profile_term + BASS_WEIGHT * bass_term + THIRD_WEIGHT * third_term
    best = int(np.argmax(scores))
    weights = np.exp((scores - scores[best]) / KEY_TEMPERATURE)
    no_key = math.exp((NO_KEY_SCORE - scores[best]) / KEY_TEMPERATURE)
    confidence = float(weights[best] / (weights.sum() + no_key))
    terms = {"profile": profile_term, "bass": bass_term, "third": third_term}
    return Key(PITCHES[best % 12], "major" if best < 12 else "minor", confidence, scores, terms)


def estimate_key_legacy(y: np.ndarray, sr: int = ANALYSIS_SR) -> Key:
    """The previous estimator: mean CQT chroma against the Krumhansl–Kessler profiles."""
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
