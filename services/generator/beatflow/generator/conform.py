"""Conform a generated result to the requested tempo and key, and cut seamless loops.

MusicGen reads "128 bpm, in A minor" as words; the audio's tempo drifts and its
key may differ. :func:`conform` measures the result (tempo, key, beats with
:mod:`beatflow.common.audioanalysis`) and:

* time-stretches it to the requested tempo when the measured tempo differs by
  more than ``TEMPO_TOLERANCE``. Half and double tempo are the same groove
  (a 64 bpm measurement of a 128 bpm request is in time), so the measurement
  is first moved by an octave towards the request; what is still more than 25 %
  away is left alone (a stretch that large sounds worse than the mismatch), as
  is a tempo measured with a confidence under ``MIN_TEMPO_CONFIDENCE``
  (aperiodic audio has no tempo to fix) or over less than ``MIN_TEMPO_S``;
* pitch-shifts it to the requested key when the measured key is confidently
  (``MIN_KEY_CONFIDENCE``) different, by the smallest interval (-6..+5
  semitones) that lands on the requested key or its relative (A minor and
  C major share their notes: a match, nothing to do);
* with ``loop``, trims it to a whole number of bars (4/4, the largest power of
  two that fits) at the requested tempo, starting on the first detected
  downbeat, and crossfades the audio just past the loop's end into its start
  (``CROSSFADE_S``), so the last sample leads into the first as it did in the
  original: played on repeat there is no click and no gap.

The report says what was measured before and after and what was applied; the
worker stores it in the generation record.

Time-scale modification is librosa's phase vocoder (``librosa.effects``): it
is already a dependency, needs no system binary, and tempo and pitch go
through one vocoder pass plus one resampling. Rubber Band handles transients
better but needs its command-line tool on every generator host. The vocoder's
weak point is attacks: with librosa's default 2048-point window (93 ms at
22.05 kHz) a 120 -> 128 bpm click track comes out with onsets 27 ms early on
average, scattered by 26 ms; with a window of at most 25 ms (``vocoder_window``)
they land within 3 ± 3 ms, at some cost in smoothness of sustained low notes,
which matters less for beats that must sit on a DAW's grid.
``bench/conform.py`` prints these onset errors and the tempo and key measured
after conforming.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import librosa
import numpy as np

from beatflow.common.audioanalysis import (
    ANALYSIS_SR,
    BEATS_PER_BAR,
    MAX_BPM,
    MIN_BPM,
    PITCHES,
    estimate_beats,
    estimate_key,
    estimate_tempo,
)

if TYPE_CHECKING:
    from beatflow.generator.request import GenerationSpec

MAX_TEMPO_CHANGE = 0.25  # stretch by at most 25 % either way
TEMPO_TOLERANCE = 0.003  # within 0.3 % (0.4 bpm at 128) is in tempo already
MIN_TEMPO_CONFIDENCE = 0.3
MIN_TEMPO_S = 4.0  # a tempo measured over fewer beats (8 at 120 bpm) is not worth stretching for
MIN_KEY_CONFIDENCE = 0.6  # bench/analysis.py: keys reported at >= 0.6 are right about 9 times in 10
CROSSFADE_S = 0.015
VOCODER_WINDOW_S = 0.025
_FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E", "E#": "F", "B#": "C"}
_KEY_RE = re.compile(
    r"^(?:in\s+)?([a-g])\s*(#|b|♯|♭|-?sharp|-?flat)?\s*(major|maj|minor|min|m|moll|dur)?$", re.IGNORECASE
)


@dataclass(frozen=True)
class RequestedKey:
    tonic: int  # 0 = C
    mode: str  # "major" or "minor"

    @property
    def name(self) -> str:
        return f"{PITCHES[self.tonic]} {self.mode}"


def parse_key(text: str) -> RequestedKey | None:
    """ "A minor", "Am", "F# major", "Bb", "in E flat minor", "C#m" -> a key; None if it is not one."""
    cleaned = " ".join(text.replace("-", " ").split()).strip(" ,.")
    cleaned = re.sub(r"\s+(sharp|flat)\b", r"\1", cleaned, flags=re.IGNORECASE)
    match = _KEY_RE.match(cleaned)
    if not match:
        return None
    letter, accidental, mode = match.groups()
    name = letter.upper()
    if accidental:
        acc = accidental.lower().lstrip("-")
        name += "#" if acc in ("#", "♯", "sharp") else "b"
    name = _FLATS.get(name, name)
    if mode is None:
        # "Cm" is C minor; a bare uppercase "M" is major; no mode word means major.
        mode_name = "major"
    else:
        mode_name = "minor" if mode.lower() in ("minor", "min", "moll") or mode == "m" else "major"
    return RequestedKey(PITCHES.index(name), mode_name)


def _relative_major(key: tuple[int, str]) -> int:
    tonic, mode = key
    return tonic if mode == "major" else (tonic + 3) % 12


def key_shift(measured: tuple[int, str], wanted: RequestedKey) -> int:
    """Semitones (-6..+5) that move ``measured`` onto ``wanted`` or its relative; 0 when they already match."""
    step = (_relative_major((wanted.tonic, wanted.mode)) - _relative_major(measured)) % 12
    return step - 12 if step > 5 else step


def tempo_ratio(measured_bpm: float, wanted_bpm: float) -> tuple[float, float]:
    """(the measurement moved by octaves towards the request, the stretch rate wanted/that)."""
    candidates = [measured_bpm * f for f in (0.5, 1.0, 2.0)]
    nearest = min(candidates, key=lambda c: abs(math.log(wanted_bpm / c)))
    return nearest, wanted_bpm / nearest


def _mono_for_analysis(wav: np.ndarray, sr: int) -> np.ndarray:
    mono = wav.mean(axis=0) if wav.ndim == 2 else wav
    if sr != ANALYSIS_SR:
        mono = librosa.resample(mono, orig_sr=sr, target_sr=ANALYSIS_SR, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32)


def measure(wav: np.ndarray, sr: int) -> dict[str, Any]:
    """Tempo and key of ``wav`` (``(channels, samples)`` or mono) as plain values."""
    mono = _mono_for_analysis(wav, sr)
    tempo = estimate_tempo(mono)
    key = estimate_key(mono)
    return {
        "bpm": round(tempo.bpm, 2),
        "bpm_confidence": round(tempo.confidence, 3),
        "key": key.name,
        "key_confidence": round(key.confidence, 3),
        "_key": (PITCHES.index(key.tonic), key.mode) if key.tonic else None,
        "_mono": mono,
    }


def vocoder_window(sr: int) -> int:
    """Phase-vocoder FFT size: the power of two nearest under 25 ms. Longer windows sound smoother on
    sustained notes but smear each attack over the window (onsets come out up to half a window early);
    at 25 ms a stretched click lands within a few ms of its place (bench/conform.py)."""
    return int(2 ** math.floor(math.log2(VOCODER_WINDOW_S * sr)))


def stretch_and_shift(wav: np.ndarray, sr: int, rate: float, semitones: int) -> np.ndarray:
    """Tempo times ``rate`` and pitch up ``semitones``: one phase-vocoder pass and one resampling."""
    if rate == 1.0 and semitones == 0:
        return wav
    pitch = 2.0 ** (semitones / 12.0)
    # Stretch by pitch/rate, then play back pitch times faster: duration / rate, pitch * pitch.
    out = librosa.effects.time_stretch(wav, rate=rate / pitch, n_fft=vocoder_window(sr))
    if semitones:
        out = librosa.resample(out, orig_sr=sr * pitch, target_sr=sr, res_type="soxr_hq", axis=-1)
    return np.asarray(out, dtype=np.float32)


def cut_loop(wav: np.ndarray, sr: int, bpm: float, downbeat_s: float) -> tuple[np.ndarray, dict[str, Any]] | None:
    """A whole number of bars from ``downbeat_s``, its start crossfaded from what follows its end."""
    bar = BEATS_PER_BAR * 60.0 / bpm
    fade = round(CROSSFADE_S * sr)
    start = round(downbeat_s * sr)
    available = (wav.shape[-1] - start - fade) / sr
    whole = math.floor(available / bar + 1e-9)
    if whole < 1:
        return None
    bars = 2 ** int(math.log2(whole))
    length = round(bars * bar * sr)
    seg = wav[..., start : start + length + fade]
    out = np.array(seg[..., :length], dtype=np.float32)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)  # 0 -> 1, raised cosine
    out[..., :fade] = seg[..., :fade] * ramp + seg[..., length : length + fade] * (1.0 - ramp)
    return out, {"bars": bars, "start_s": round(start / sr, 4), "length_s": round(length / sr, 4), "bar_s": bar}


def conform(
    wav: np.ndarray,
    sr: int,
    *,
    bpm: float | None = None,
    key: RequestedKey | None = None,
    loop: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Conform float ``(channels, samples)`` audio; returns the new audio and the report for the record."""
    started = time.perf_counter()
    before = measure(wav, sr)
    notes: list[str] = []
    rate, semitones = 1.0, 0
    if bpm:
        measured = before["bpm"]
        if wav.shape[-1] < MIN_TEMPO_S * sr:
            notes.append(f"tempo not changed: shorter than {MIN_TEMPO_S:g} s, too few beats to measure")
        elif before["bpm_confidence"] < MIN_TEMPO_CONFIDENCE or not MIN_BPM <= measured <= MAX_BPM:
            notes.append(f"tempo not changed: no clear tempo measured (confidence {before['bpm_confidence']:.2f})")
        else:
            nearest, ratio = tempo_ratio(measured, bpm)
            if abs(ratio - 1.0) <= TEMPO_TOLERANCE:
                notes.append(f"tempo already {bpm:g} bpm")
            elif not 1 - MAX_TEMPO_CHANGE <= ratio <= 1 + MAX_TEMPO_CHANGE:
                notes.append(f"tempo not changed: {nearest:.1f} bpm is more than 25% from {bpm:g}")
            else:
                rate = ratio
    if key is not None:
        if before["_key"] is None or before["key_confidence"] < MIN_KEY_CONFIDENCE:
            notes.append(f"key not changed: no confident key measured (confidence {before['key_confidence']:.2f})")
        else:
            semitones = key_shift(before["_key"], key)
            if semitones == 0:
                notes.append(f"key {before['key']} already matches {key.name}")
    out = stretch_and_shift(wav, sr, rate, semitones)
    loop_info: dict[str, Any] | None = None
    if loop:
        stretched = rate != 1.0 or semitones != 0
        mono = _mono_for_analysis(out, sr) if stretched else before["_mono"]
        loop_bpm = bpm or 0.0
        if not loop_bpm:
            tempo = estimate_tempo(mono)
            if tempo.confidence >= MIN_TEMPO_CONFIDENCE and MIN_BPM <= tempo.bpm <= MAX_BPM:
                loop_bpm = round(tempo.bpm, 2)
        if not loop_bpm:
            notes.append("not looped: no tempo requested and none measured")
        else:
            beats = estimate_beats(mono, bpm=loop_bpm)
            downbeat = beats.downbeat_times_s[0] if beats.downbeat_times_s else 0.0
            cut = cut_loop(out, sr, loop_bpm, downbeat)
            if cut is None:
                notes.append(f"not looped: less than one bar at {loop_bpm:g} bpm after the first downbeat")
            else:
                out, loop_info = cut
                loop_info["bpm"] = loop_bpm
                loop_info["downbeat_detected"] = bool(beats.downbeat_times_s)
    changed = rate != 1.0 or semitones != 0 or loop_info is not None
    after = measure(out, sr) if changed else dict(before)
    return out, {
        "requested": {"bpm": bpm, "key": key.name if key else None, "loop": loop},
        "before": {k: v for k, v in before.items() if not k.startswith("_")},
        "applied": {
            "time_stretch": round(rate, 5),
            "pitch_shift_semitones": semitones,
            "loop": loop_info,
        },
        "after": {k: v for k, v in after.items() if not k.startswith("_")},
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 3),
    }


def conform_result(wav: np.ndarray, sr: int, spec: GenerationSpec) -> tuple[np.ndarray, dict[str, Any] | None]:
    """What the worker calls on each decoded result: conform as the request asks (None: nothing asked)."""
    if not spec.conforms and not spec.loop:
        return wav, None
    bpm = float(spec.hints.bpm) if spec.conforms and spec.hints.bpm else None
    key = parse_key(spec.hints.key) if spec.conforms and spec.hints.key.strip() else None
    out, report = conform(wav, sr, bpm=bpm, key=key, loop=spec.loop)
    if spec.conforms and spec.hints.key.strip() and key is None:
        report["notes"].append(f"key not changed: {spec.hints.key!r} is not a key")
    report["conform"] = spec.conforms
    return out, report
