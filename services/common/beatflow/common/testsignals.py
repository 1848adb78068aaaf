"""Synthetic audio with known tempo and key, for tests, benchmarks and demos.

Click tracks (a decaying noise/sine burst per beat, accented downbeats) and
chord progressions (additive-synthesis chords with a few harmonics and a soft
attack), so analysis can be checked against ground truth without any dataset.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

PITCHES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
MAJOR_SCALE = [0, 2, 4, 5, 7, 9, 11]
MINOR_SCALE = [0, 2, 3, 5, 7, 8, 10]  # natural minor; the V chord is raised (harmonic minor)


def click_track(bpm: float, seconds: float, sr: int = 44100, *, accent_every: int = 4, seed: int = 0) -> np.ndarray:
    """Mono clicks on every beat; the first of each bar louder."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n, dtype=np.float64)
    length = int(0.03 * sr)
    t = np.arange(length) / sr
    env = np.exp(-t / 0.006)
    period = 60.0 / bpm
    beat = 0
    while True:
        start = round(beat * period * sr)
        if start >= n:
            break
        amp = 0.8 if accent_every and beat % accent_every == 0 else 0.5
        burst = amp * env * (0.6 * np.sin(2 * np.pi * 1500 * t) + 0.4 * rng.standard_normal(length))
        end = min(n, start + length)
        y[start:end] += burst[: end - start]
        beat += 1
    return y.astype(np.float32)


def drum_pattern(bpm: float, seconds: float, sr: int = 44100, *, seed: int = 0) -> np.ndarray:
    """Kick on beats 1 and 3, snare on 2 and 4, closed hi-hat on every eighth note."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n)
    eighth = 30.0 / bpm
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.12)
    snare = (0.5 * rng.standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.06)
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.015) * 0.25
    step = 0
    while (start := round(step * eighth * sr)) < n:
        hits = [hat]
        if step % 8 in (0, 4):
            hits.append(kick)
        if step % 8 in (2, 6):
            hits.append(snare)
        for hit in hits:
            end = min(n, start + len(hit))
            y[start:end] += hit[: end - start]
        step += 1
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _note(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    tone = sum((0.6**h) * np.sin(2 * np.pi * freq * (h + 1) * t) for h in range(4))
    attack = np.minimum(1.0, t / 0.02)
    release = np.minimum(1.0, (seconds - t) / 0.05)
    return tone * attack * release * np.exp(-t / (seconds * 1.5))


PROGRESSIONS = {"cadence": [0, 3, 4, 0], "pop": [0, 4, 5, 3], "modal": [0, 5, 3, 4], "dominant": [0, 4, 0, 4]}
HARMONIC = ("cadence", "dominant")  # progressions whose V is major in minor keys (raised leading tone)


def chord_progression(
    tonic: str, mode: str, seconds: float = 8.0, sr: int = 22050, *, bpm: float = 100.0, progression: str = "cadence"
) -> np.ndarray:
    """Chords on scale degrees, one per bar, with a bass note.

    ``cadence``: I-IV-V-I (major) or i-iv-V-i (minor); ``pop``: I-V-vi-IV / i-v-VI-iv;
    ``modal``: I-vi-IV-V / i-VI-iv-v; ``dominant``: I-V-I-V / i-V-i-V. In minor the V chord of
    ``cadence`` and ``dominant`` is major (raised 7th, harmonic minor).
    """
    root = PITCHES.index(tonic)
    scale = MAJOR_SCALE if mode == "major" else MINOR_SCALE
    degrees = PROGRESSIONS[progression]
    bar = 4 * 60.0 / bpm
    out: list[np.ndarray] = []
    total = 0.0
    i = 0
    while total < seconds:
        degree = degrees[i % len(degrees)]
        notes = [scale[(degree + step) % 7] + 12 * ((degree + step) // 7) for step in (0, 2, 4)]
        if mode == "minor" and degree == 4 and progression in HARMONIC:
            notes[1] += 1  # raised leading tone: V is major in minor keys
        chord = np.zeros(int(bar * sr))
        for semis in notes:
            chord += _note(261.63 * 2 ** ((root + semis - 12 * (root > 6)) / 12), bar, sr)
        chord += 0.8 * _note(65.41 * 2 ** ((root + notes[0] - 12 * (root > 6)) / 12), bar, sr)
        out.append(chord)
        total += bar
        i += 1
    y = np.concatenate(out)[: int(seconds * sr)]
    return (0.25 * y / np.abs(y).max()).astype(np.float32)


def music_like(seconds: float, sr: int = 44100, *, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A stereo mix of clicks, chords and noise, ``[frames, channels]``, peak ~0.5."""
    clicks = click_track(120, seconds, sr, seed=seed)
    chords = np.interp(
        np.arange(int(seconds * sr)) / sr,
        np.arange(int(seconds * 22050)) / 22050,
        chord_progression("A", "minor", seconds, 22050),
    )
    rng = np.random.default_rng(seed)
    mono = 0.5 * clicks + chords + 0.02 * rng.standard_normal(len(clicks))
    if channels == 1:
        return (0.5 * mono / np.abs(mono).max())[:, None].astype(np.float32)
    spread = np.stack([mono, np.roll(mono, 37)], axis=1)
    return (0.5 * spread / np.abs(spread).max()).astype(np.float32)


def encode(audio: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format=fmt, subtype=subtype)
    return buf.getvalue()
