"""Perceptual diff of two takes of a stem: where they sound different, by how much, and what changed overall.

Both files are decoded block by block to mono at 22.05 kHz and turned into log-mel frames
(64 bands, 2048-sample windows every 512 samples: ~23 ms a frame). Only those frames are kept
(about 6 MB for ten minutes), never the audio, so memory stays bounded on long stems.

* **Offset:** a constant offset (a take that starts later) is found by cross-correlating the
  standardised log-mel frames (up to ``MAX_OFFSET_S``); it is used only when it clearly beats
  no offset (correlation at least ``OFFSET_MIN_CORRELATION`` and ``OFFSET_MARGIN`` above that
  at no offset), and the second file is then decoded again shifted by that many samples.
* **Gain:** the median level difference over the frames and bands that are active in both
  takes; removed before comparing, so a gain-only change is reported as ``gain_db`` and no
  regions.
* **Curve and regions:** the per-frame distance is the mean absolute log-mel difference (dB)
  after gain, with a floor 60 dB under the loudest band, so silence equals silence. The
  drawing curve is that distance divided by ``CURVE_FULL_SCALE_DB`` (1 = at least that much),
  in bins of ``CURVE_BIN_S``. Regions are the runs of frames over ``REGION_THRESHOLD_DB``
  (gaps under ``MERGE_GAP_S`` merged), in the ``to`` take's timeline (``from`` time =
  ``to`` time - ``offset_s``), plus the part of the longer take the other one lacks.
* **Summary:** loudness (LUFS), peak, tempo, key and duration of both sides come from
  :func:`beatflow.separator.analysis.analyze_file`. A tempo or key delta is stated only where
  both sides' estimates are confident (``RELIABLE_CONFIDENCE``): a sustained tone has no beat,
  and a drum loop no key, so ``tempo_delta_bpm`` is then null and ``key_changed`` false, with
  ``tempo_reliable`` / ``key_reliable`` saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import scipy.fft
import soxr

from beatflow.separator import analysis
from beatflow.separator.audio_stream import iter_blocks, open_audio

VERSION = 2  # bump when the algorithm changes: cached results are keyed by it
SR = 22050
RELIABLE_CONFIDENCE = 0.3  # tempo/key confidence under which a delta would be noise (see analysis tests)
N_FFT = 2048
HOP = 512
N_MELS = 64
FLOOR_DB = 60.0
REGION_THRESHOLD_DB = 3.0
MERGE_GAP_S = 0.2
MIN_REGION_S = 0.05
CURVE_BIN_S = 0.1
CURVE_FULL_SCALE_DB = 12.0
MAX_OFFSET_S = 10.0
OFFSET_MIN_CORRELATION = 0.5
OFFSET_MARGIN = 0.1
GAIN_EPSILON_DB = 0.05
_FRAMES_PER_BATCH = 256

Progress = Callable[[float, str], None]


@dataclass
class Region:
    start_s: float  # in the ``to`` take's timeline
    end_s: float
    score: float  # mean curve value in the region (0..1)

    def to_dict(self) -> dict[str, float]:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "score": round(self.score, 3)}


@dataclass
class StemDiff:
    status: str  # unchanged | changed | gain_only | added | removed
    offset_s: float = 0.0
    gain_db: float = 0.0
    regions: list[Region] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)
    curve_bin_s: float = CURVE_BIN_S
    summary: dict[str, Any] = field(default_factory=dict)
    decoded: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["regions"] = [r.to_dict() for r in self.regions]
        out["offset_s"] = round(self.offset_s, 4)
        out["gain_db"] = round(self.gain_db, 3)
        return out


def unchanged() -> StemDiff:
    """Same content hash: nothing to decode."""
    return StemDiff(status="unchanged", decoded=False)


_MEL: np.ndarray | None = None


def _mel_basis() -> np.ndarray:
    global _MEL
    if _MEL is None:
        _MEL = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    return _MEL


def _mono_stream(path: str | Path, shift: int = 0, max_duration_s: float | None = None) -> Iterator[np.ndarray]:
    """Mono float32 at SR, block by block; ``shift`` > 0 drops that many output samples, < 0 prepends silence."""
    handle, info = open_audio(path, max_duration_s=max_duration_s)
    resampler = soxr.ResampleStream(info.sample_rate, SR, 1, dtype="float32", quality="HQ")
    to_drop = max(0, shift)
    if shift < 0:
        yield np.zeros(-shift, np.float32)
    with handle:
        for block in iter_blocks(handle):
            out = resampler.resample_chunk(block.mean(axis=1).astype(np.float32), last=False)
            if to_drop:
                cut = min(to_drop, len(out))
                out, to_drop = out[cut:], to_drop - cut
            if len(out):
                yield out
    tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
    if to_drop:
        tail = tail[min(to_drop, len(tail)) :]
    if len(tail):
        yield tail


def mel_frames(path: str | Path, *, shift: int = 0, max_duration_s: float | None = None) -> tuple[np.ndarray, int]:
    """Log-mel power (dB) frames ``[T, N_MELS]`` (centred: frame t at t*HOP/SR s) and the sample count."""
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    mel = _mel_basis()
    buf = np.zeros(N_FFT // 2, np.float32)  # centring pad
    out: list[np.ndarray] = []
    total = 0

    def emit(b: np.ndarray, final: bool) -> np.ndarray:
        n = (len(b) - N_FFT) // HOP + 1 if len(b) >= N_FFT else 0
        if n <= 0:
            return b
        view = np.lib.stride_tricks.sliding_window_view(b, N_FFT)[: (n - 1) * HOP + 1 : HOP]
        for i in range(0, n, _FRAMES_PER_BATCH):
            spec = np.abs(scipy.fft.rfft(view[i : i + _FRAMES_PER_BATCH] * window, axis=1)) ** 2
            out.append(10.0 * np.log10(spec @ mel.T + 1e-10))
        return b[n * HOP :]

    for block in _mono_stream(path, shift, max_duration_s):
        total += len(block)
        buf = emit(np.concatenate([buf, block]), False)
    frames_wanted = total // HOP + 1
    have = sum(len(o) for o in out)
    if have < frames_wanted:
        pad = np.zeros(N_FFT, np.float32)
        buf = emit(np.concatenate([buf, pad]), True)
    mels = np.concatenate(out)[:frames_wanted] if out else np.zeros((0, N_MELS), np.float32)
    return mels, total


def _band_standardiser(m: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Floor, per-band means and overall deviation of the floored log-mel frames."""
    floor = float(m.max(initial=-100.0)) - FLOOR_DB
    means = np.array([np.maximum(m[:, k], floor).mean() for k in range(m.shape[1])], np.float64)
    var = np.mean([np.mean((np.maximum(m[:, k], floor) - means[k]) ** 2) for k in range(m.shape[1])])
    return floor, means, float(np.sqrt(var)) + 1e-9


def estimate_offset(a: np.ndarray, b: np.ndarray) -> float:
    """Frames by which ``b`` lags ``a`` (fractional), or 0.0 when no offset clearly beats none.

    Cross-correlation of the standardised log-mel frames summed over bands: the spectral
    content, not just onsets, must line up, so the bars of a loop do not pass for one another.
    Band by band, so memory stays a few FFT buffers on long stems.
    """
    if len(a) < 8 or len(b) < 8:
        return 0.0
    size = 1 << (len(a) + len(b) - 1).bit_length()
    (fla, ma, sa), (flb, mb, sb) = _band_standardiser(a), _band_standardiser(b)
    corr = np.zeros(size, np.float64)
    for k in range(N_MELS):
        xa = (np.maximum(a[:, k], fla) - ma[k]) / sa
        xb = (np.maximum(b[:, k], flb) - mb[k]) / sb
        corr += scipy.fft.irfft(scipy.fft.rfft(xb, size) * np.conj(scipy.fft.rfft(xa, size)), size)
    max_lag = min(int(MAX_OFFSET_S * SR / HOP), len(a) // 2, len(b) // 2)
    lags = np.arange(-max_lag, max_lag + 1)
    overlap = np.minimum(len(b) - np.maximum(lags, 0), len(a) + np.minimum(lags, 0)).astype(np.float64)
    values = corr[lags % size] / np.maximum(overlap, 1) / N_MELS
    best = int(np.argmax(values))
    zero = values[max_lag]
    if lags[best] == 0 or values[best] < OFFSET_MIN_CORRELATION or values[best] < zero + OFFSET_MARGIN:
        return 0.0
    lag = float(lags[best])
    if 0 < best < len(values) - 1:  # parabolic refinement
        y0, y1, y2 = values[best - 1], values[best], values[best + 1]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            lag += 0.5 * (y0 - y2) / denom
    return lag


def estimate_gain(a: np.ndarray, b: np.ndarray, floor: float) -> float:
    active = (a > floor + 20.0) & (b > floor + 20.0)
    if not active.any():
        return 0.0
    gain = float(np.median(b[active] - a[active]))
    return gain if abs(gain) > GAIN_EPSILON_DB else 0.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where ``mask`` is true."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def compare(a: np.ndarray, b: np.ndarray, offset_frames: int = 0) -> tuple[float, np.ndarray, list[Region]]:
    """Gain (dB), per-frame curve (0..1) and regions in ``b``'s timeline (``a`` frame t - offset pairs with ``b`` t)."""
    floor = max(float(a.max(initial=-100.0)), float(b.max(initial=-100.0))) - FLOOR_DB
    start = max(0, offset_frames)
    end = min(len(b), len(a) + offset_frames)
    gain = estimate_gain(a[start - offset_frames : end - offset_frames], b[start:end], floor)
    # The union of both timelines, in b's frames; a side that has no frame there is silence.
    total = max(len(b), len(a) + offset_frames)
    silence = np.full(N_MELS, floor, np.float32)
    dist = np.zeros(total, np.float32)
    for t0 in range(0, total, 4096):
        t = np.arange(t0, min(total, t0 + 4096))
        ta = t - offset_frames
        bb = np.where((t < len(b))[:, None], b[np.minimum(t, len(b) - 1)] - gain, silence) if len(b) else silence
        aa = np.where(((ta >= 0) & (ta < len(a)))[:, None], a[np.clip(ta, 0, len(a) - 1)], silence)
        dist[t0 : t0 + len(t)] = np.abs(np.maximum(bb, floor) - np.maximum(aa, floor)).mean(axis=1)
    frame_s = HOP / SR
    over = dist > REGION_THRESHOLD_DB
    regions: list[Region] = []
    for s, e in _runs(over):
        r0, r1 = max(0.0, (s - 0.5) * frame_s), (e - 0.5) * frame_s
        if regions and r0 - regions[-1].end_s < MERGE_GAP_S:
            regions[-1].end_s = r1
        else:
            regions.append(Region(r0, r1, 0.0))
    curve_frames = np.minimum(dist / CURVE_FULL_SCALE_DB, 1.0)
    out = []
    for r in regions:
        if r.end_s - r.start_s < MIN_REGION_S:
            continue
        lo, hi = int(r.start_s / frame_s + 0.5), max(int(r.end_s / frame_s + 0.5), int(r.start_s / frame_s + 0.5) + 1)
        r.score = float(curve_frames[lo:hi].mean()) if hi > lo else 0.0
        out.append(r)
    return gain, curve_frames, out


def _curve_bins(curve_frames: np.ndarray) -> list[float]:
    """The curve in bins of CURVE_BIN_S seconds (the loudest frame of each bin)."""
    if not len(curve_frames):
        return []
    index = (np.arange(len(curve_frames)) * (HOP / SR) / CURVE_BIN_S).astype(np.int64)
    bins = np.zeros(int(index[-1]) + 1, np.float32)
    np.maximum.at(bins, index, curve_frames)
    return [round(float(v), 3) for v in bins]


def _summary(path_a: Path, path_b: Path, max_duration_s: float | None) -> dict[str, Any]:
    a = analysis.analyze_file(path_a, max_duration_s=max_duration_s)
    b = analysis.analyze_file(path_b, max_duration_s=max_duration_s)
    tempo_reliable = min(a.bpm_confidence, b.bpm_confidence) >= RELIABLE_CONFIDENCE
    key_reliable = min(a.key_confidence, b.key_confidence) >= RELIABLE_CONFIDENCE
    return {
        "from": a.to_dict(),
        "to": b.to_dict(),
        "loudness_delta_lu": round(b.loudness_lufs - a.loudness_lufs, 2),
        "peak_delta_db": round(b.peak_dbfs - a.peak_dbfs, 2),
        "tempo_reliable": tempo_reliable,
        "tempo_delta_bpm": round(b.bpm - a.bpm, 2) if tempo_reliable else None,
        "key_reliable": key_reliable,
        "key_changed": key_reliable and (a.key_tonic, a.key_mode) != (b.key_tonic, b.key_mode),
        "duration_delta_s": round(b.duration_s - a.duration_s, 3),
    }


def diff_files(
    path_a: str | Path,
    path_b: str | Path,
    *,
    progress: Progress | None = None,
    max_duration_s: float | None = None,
    with_summary: bool = True,
) -> StemDiff:
    """The perceptual diff of two decodable audio files (``a`` = from, ``b`` = to)."""
    report = progress or (lambda _f, _s: None)
    report(0.0, "decoding from")
    a, _ = mel_frames(path_a, max_duration_s=max_duration_s)
    report(0.3, "decoding to")
    b, _ = mel_frames(path_b, max_duration_s=max_duration_s)
    lag = estimate_offset(a, b)
    shift = round(lag * HOP)
    if shift:
        report(0.5, "aligning")
        # Re-decode ``b`` moved by the sample offset so frames line up to the sample; whole frames
        # of the offset stay as a frame offset (``b`` later than ``a`` by ``shift`` samples).
        whole = int(np.floor(shift / HOP))
        b, _ = mel_frames(path_b, shift=shift - whole * HOP, max_duration_s=max_duration_s)
    else:
        whole = 0
    dropped_s = (shift - whole * HOP) / SR  # b's frames start this much into the ``to`` take
    report(0.6, "comparing")
    gain, curve_frames, regions = compare(a, b, whole)
    for r in regions:
        r.start_s, r.end_s = r.start_s + dropped_s, r.end_s + dropped_s
    result = StemDiff(
        status="changed" if regions else ("gain_only" if gain else "unchanged"),
        offset_s=shift / SR,
        gain_db=gain,
        regions=regions,
        curve=_curve_bins(curve_frames),
    )
    if with_summary:
        report(0.7, "analysing")
        result.summary = _summary(Path(path_a), Path(path_b), max_duration_s)
    report(1.0, "done")
    return result
