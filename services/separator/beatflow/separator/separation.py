"""Segment-by-segment Demucs separation with overlap-add, in bounded memory.

``demucs.apply.apply_model`` keeps the whole track and every stem in memory and
only reports progress through a callback it cannot be stopped from cleanly. This
loop runs the model on one segment at a time (through ``apply_model`` itself, so
shifts, bags of models and padding behave exactly as in demucs), blends
overlapping segments with the same triangular weights, and writes each sample of
each stem to its file as soon as no later segment can touch it. Memory is
therefore one segment's worth of audio and stems whatever the track length, and
between (and inside) segments the caller gets progress and can cancel.

The stems are then made to add up to the mix exactly: whatever the model left
out (``mix - sum(stems)``) is added to one chosen stem, so the written stems
null-test against the input within float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from demucs.apply import TensorChunk, apply_model

from beatflow.common.errors import InvalidArgument
from beatflow.separator.audio_stream import FORMATS, StemWriter
from beatflow.separator.models import LoadedModel

MAX_SHIFTS = 10
MAX_OVERLAP = 0.9  # beyond this the passes per segment explode (0.9999: one pass every few samples)


@dataclass
class SeparationOptions:
    model: str = ""
    two_stems: str = ""  # e.g. "vocals": outputs vocals and no_vocals
    shifts: int = 0
    overlap: float = 0.25
    segment_s: float | None = None  # None: the model's own segment length
    format: str = "wav"
    residual_stem: str = ""  # "" -> "other" (or "no_<stem>" in two-stem mode)
    seed: int = 0  # for the random shifts, so a retried job gives the same stems

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "two_stems": self.two_stems,
            "shifts": self.shifts,
            "overlap": self.overlap,
            "segment_s": self.segment_s,
            "format": self.format,
            "residual_stem": self.residual_stem,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeparationOptions:
        known = {k: data[k] for k in cls().to_dict() if k in data}
        return cls(**known)


@dataclass
class StemPlan:
    """Which stems come out, how each is formed from the model's sources, and who gets the residual."""

    outputs: list[str]
    groups: dict[str, list[int]]  # output stem -> indices of model sources summed into it
    residual: str


def check_options(opts: SeparationOptions, sources: list[str]) -> StemPlan:
    """Validate options against a model's sources; InvalidArgument on anything wrong."""
    if opts.format not in FORMATS:
        raise InvalidArgument(f"stem format must be WAV or FLAC, not {opts.format!r}")
    if not 0 <= opts.shifts <= MAX_SHIFTS:
        raise InvalidArgument(f"shifts must be between 0 and {MAX_SHIFTS}, not {opts.shifts}")
    if not 0.0 <= opts.overlap <= MAX_OVERLAP or math.isnan(opts.overlap):
        raise InvalidArgument(f"overlap must be between 0 and {MAX_OVERLAP}, not {opts.overlap}")
    if opts.two_stems:
        if opts.two_stems not in sources:
            raise InvalidArgument(f"two_stems must name one of the model's sources {sources}, not {opts.two_stems!r}")
        rest = "no_" + opts.two_stems
        outputs = [opts.two_stems, rest]
        keep = sources.index(opts.two_stems)
        groups = {opts.two_stems: [keep], rest: [i for i in range(len(sources)) if i != keep]}
        default_residual = rest
    else:
        outputs = list(sources)
        groups = {name: [i] for i, name in enumerate(sources)}
        default_residual = "other" if "other" in sources else sources[-1]
    residual = opts.residual_stem or default_residual
    if opts.two_stems and opts.residual_stem == "other" and "other" not in outputs:
        residual = default_residual  # "other" lives inside no_<stem>
    if residual not in outputs:
        raise InvalidArgument(f"residual_stem must be one of the output stems {outputs}, not {residual!r}")
    return StemPlan(outputs, groups, residual)


def segment_length_s(opts: SeparationOptions, model: LoadedModel) -> float:
    seg = model.default_segment_s if opts.segment_s is None else float(opts.segment_s)
    if not (0.1 <= seg <= model.max_segment_s + 1e-9):
        raise InvalidArgument(
            f"segment_s must be between 0.1 and {model.max_segment_s:.2f} s for model {model.name}, not {seg}"
        )
    return seg


def plan_segments(frames: int, sample_rate: int, segment_s: float, overlap: float) -> tuple[int, int, int]:
    """(segment_length, stride, number_of_segments), as demucs' split mode computes them."""
    seg_len = int(sample_rate * segment_s)
    stride = max(1, int((1 - overlap) * seg_len))
    return seg_len, stride, len(range(0, frames, stride))


def segment_plan(model: LoadedModel, opts: SeparationOptions, frames: int) -> tuple[int, int, int, int, int]:
    """(window, max_shift, segment_length, stride, number_of_segments) for a track of ``frames``.

    ``window`` is what the model sees per pass. With shifts, each pass sees the
    segment's audio displaced by up to ``max_shift`` inside its window (demucs'
    time-equivariance trick), so a segment holds ``window - max_shift`` new
    samples; without shifts a segment is the whole window.
    """
    sr = model.samplerate
    window = int(sr * segment_length_s(opts, model))
    max_shift = min(int(0.5 * sr), window // 2) if opts.shifts else 0
    seg_len, stride, total = plan_segments(frames, sr, (window - max_shift) / sr, opts.overlap)
    return window, max_shift, seg_len, stride, total


class Frames(Protocol):
    """``[frames, channels]`` float32 audio that can be sliced by rows (an array or a RawFrames file)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, index: slice) -> np.ndarray: ...


def _window(mix: Frames, start: int, stop: int) -> np.ndarray:
    """``mix[start:stop]`` as ``[channels, n]`` float32, zero outside the track."""
    frames = mix.shape[0]
    out = np.zeros((mix.shape[1], stop - start), dtype=np.float32)
    lo, hi = max(start, 0), min(stop, frames)
    if hi > lo:
        out[:, lo - start : hi - start] = mix[lo:hi].T
    return out


@dataclass
class SeparationReport:
    stems: dict[str, Path]
    frames: int
    sample_rate: int
    segments: int
    residual_stem: str
    residual_peak: float  # largest |mix - sum(model stems)| moved into the residual stem
    extra: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[int, int], None]
CheckFn = Callable[[], None]


def separate(
    model: LoadedModel,
    mix: Frames,
    out_dir: Path,
    opts: SeparationOptions,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    on_segment: ProgressFn | None = None,
    check_cancel: CheckFn | None = None,
    segment_batch: int = 1,
) -> SeparationReport:
    """Separate ``mix`` (``[frames, channels]`` at the model's rate; an array or RawFrames) into stem files.

    ``on_segment(done, total)`` runs after each segment; ``check_cancel()`` runs
    before each model pass (every shift, every model of a bag) and may raise to stop.
    ``segment_batch`` > 1 runs that many consecutive full-length segments through the model in one
    batch (without shifts): the same stems, fewer and larger passes (what a GPU wants; demucs'
    ``apply_model`` runs them one by one). Memory grows by about that many windows of estimates.
    """
    plan = check_options(opts, model.sources)
    seg_s = segment_length_s(opts, model)
    frames, channels = mix.shape
    sr = model.samplerate
    window, max_shift, seg_len, stride, total = segment_plan(model, opts, frames)
    context = window + max_shift  # real audio kept around a segment for padding and shifts

    weight = np.concatenate([np.arange(1, seg_len // 2 + 1), np.arange(seg_len - seg_len // 2, 0, -1)])
    weight = (weight / weight.max()).astype(np.float32)
    n_src = len(model.sources)
    acc = np.zeros((n_src, channels, seg_len), dtype=np.float32)
    wsum = np.zeros(seg_len, dtype=np.float32)
    scale = std if std > 1e-8 else 1.0

    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {name: StemWriter(out_dir / f"{name}.{opts.format}", opts.format, sr, channels) for name in plan.outputs}
    residual_peak = 0.0
    rng = np.random.default_rng(opts.seed & (2**64 - 1))  # any int64 seed (numpy refuses negatives)

    def callback(_info: dict[str, Any]) -> None:
        if check_cancel is not None:
            check_cancel()

    net: Any = model.model  # a demucs model (HTDemucs or a bag); typed as a plain Module

    def run(chunk: TensorChunk) -> np.ndarray:
        return run_many(chunk)[0]  # [sources, channels, chunk length]

    def context_of(offset: int, length: int) -> torch.Tensor:
        ctx = _window(mix, offset - context, offset + length + context)
        return torch.from_numpy((ctx - mean) / scale)[None].to(model.device)

    offsets = list(range(0, frames, stride))
    batched: dict[int, np.ndarray] = {}  # estimates of segments run ahead in a batch, by index

    def run_batch(first: int) -> None:
        """Full-length segments ``first``, ``first + 1``, ... (up to ``segment_batch``) in one pass."""
        group = [i for i in range(first, min(first + segment_batch, total)) if frames - offsets[i] >= seg_len]
        if len(group) < 2:
            return
        stacked = torch.cat([context_of(offsets[i], seg_len) for i in group])
        est = run_many(TensorChunk(stacked, context, seg_len))
        for j, i in enumerate(group):
            batched[i] = est[j]

    def run_many(chunk: TensorChunk) -> np.ndarray:
        if check_cancel is not None:
            check_cancel()
        with torch.no_grad():
            est = apply_model(net, chunk, shifts=0, split=False, segment=seg_s, device=model.device, callback=callback)
        return est.float().cpu().numpy()  # [batch, sources, channels, chunk length]

    try:
        for index, offset in enumerate(offsets):
            length = min(seg_len, frames - offset)
            if not opts.shifts and segment_batch > 1 and index not in batched:
                run_batch(index)
            if index in batched:
                est_np = batched.pop(index)
            elif not opts.shifts:
                est_np = run(TensorChunk(context_of(offset, length), context, length))
            else:
                ctx_t = context_of(offset, length)
                est_np = np.zeros((n_src, channels, length), dtype=np.float32)
                for _ in range(opts.shifts):
                    d = int(rng.integers(0, max_shift + 1))
                    est_np += run(TensorChunk(ctx_t, context - d, window))[:, :, d : d + length]
                est_np /= opts.shifts
            est_np = est_np * scale + mean
            acc[:, :, :length] += weight[:length] * est_np
            wsum[:length] += weight[:length]

            last = offset + stride >= frames
            done = length if last else stride
            block = acc[:, :, :done] / wsum[:done]
            residual_peak = max(residual_peak, _write_block(block, mix[offset : offset + done], plan, writers))
            acc = np.concatenate([acc[:, :, done:], np.zeros((n_src, channels, done), np.float32)], axis=2)
            wsum = np.concatenate([wsum[done:], np.zeros(done, np.float32)])
            if on_segment is not None:
                on_segment(index + 1, total)
    finally:
        for writer in writers.values():
            writer.close()
    return SeparationReport(
        stems={name: w.path for name, w in writers.items()},
        frames=frames,
        sample_rate=sr,
        segments=total,
        residual_stem=plan.residual,
        residual_peak=residual_peak,
    )


def _write_block(block: np.ndarray, mix_block: np.ndarray, plan: StemPlan, writers: dict[str, StemWriter]) -> float:
    """Group sources into output stems, move the residual into one, write. Returns the residual peak."""
    mix_t = np.asarray(mix_block, dtype=np.float32).T  # [channels, n]
    stems = {name: block[idx].sum(axis=0, dtype=np.float32) for name, idx in plan.groups.items()}
    if writers[plan.residual].fmt == "flac":
        # Quantise to 24 bits first, so the residual also covers the rounding of the other stems.
        q = 2.0**-23
        for name in stems:
            if name != plan.residual:
                stems[name] = np.clip(np.round(stems[name] / q) * q, -1.0, 1.0 - q).astype(np.float32)
    others = np.zeros_like(mix_t)
    for name, stem in stems.items():
        if name != plan.residual:
            others += stem
    residual = mix_t - others - stems[plan.residual]
    stems[plan.residual] = mix_t - others  # = model estimate + residual
    for name in plan.outputs:
        writers[name].write(np.ascontiguousarray(stems[name].T))
    return float(np.abs(residual).max()) if residual.size else 0.0
