"""The segment loop: same stems as demucs' own apply_model, exact sums, cancellation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from demucs.apply import apply_model

from beatflow.common.errors import InvalidArgument
from beatflow.separator.models import load_model
from beatflow.separator.separation import SeparationOptions, check_options, separate
from beatflow.separator.testsignals import music_like

TINY = load_model("tiny", device="cpu")


def read(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0]


def test_matches_demucs_apply_model_and_sums_to_the_mix(tmp_path: Path) -> None:
    mix = music_like(5.3, 44100, seed=5)
    expected = apply_model(
        TINY.model, torch.from_numpy(mix.T.copy())[None], shifts=0, split=True, overlap=0.5, segment=4.0
    )[0].numpy()
    seen: list[tuple[int, int]] = []
    report = separate(
        TINY, mix, tmp_path, SeparationOptions(segment_s=4.0, overlap=0.5), on_segment=lambda d, t: seen.append((d, t))
    )
    assert seen == [(i, report.segments) for i in range(1, report.segments + 1)]
    assert report.segments == 3  # stride 2 s over 5.3 s: full, full, partial segment
    stems = {name: read(path) for name, path in report.stems.items()}
    for i, name in enumerate(TINY.sources):
        assert stems[name].shape == mix.shape
        if name != "other":  # "other" also carries the residual
            assert np.abs(stems[name] - expected[i].T).max() < 1e-5, name
    assert np.abs(sum(stems.values()) - mix).max() < 1e-6
    assert report.residual_peak > 0  # random weights leave a residual; it went into "other"


def test_residual_can_go_to_another_stem_and_shifts_are_seeded(tmp_path: Path) -> None:
    mix = music_like(2.5, 44100, seed=6)
    opts = SeparationOptions(segment_s=4.0, shifts=2, residual_stem="vocals", seed=7)
    a = separate(TINY, mix, tmp_path / "a", opts)
    b = separate(TINY, mix, tmp_path / "b", opts)
    for name in a.stems:
        assert np.array_equal(read(a.stems[name]), read(b.stems[name]))
    assert np.abs(sum(read(p) for p in a.stems.values()) - mix).max() < 1e-6
    assert a.residual_stem == "vocals"


def test_cancel_check_stops_between_model_passes(tmp_path: Path) -> None:
    mix = music_like(6.0, 44100)
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        separate(TINY, mix, tmp_path, SeparationOptions(segment_s=1.0, overlap=0.0), check_cancel=check)
    assert len(calls) == 2  # one pass ran, the next was refused


def test_option_checks() -> None:
    sources = TINY.sources
    plan = check_options(SeparationOptions(two_stems="drums"), sources)
    assert plan.outputs == ["drums", "no_drums"] and plan.residual == "no_drums"
    assert plan.groups["no_drums"] == [1, 2, 3]
    for bad in [
        SeparationOptions(format="mp3"),
        SeparationOptions(overlap=-0.1),
        SeparationOptions(shifts=-1),
        SeparationOptions(two_stems="piano"),
        SeparationOptions(residual_stem="no_vocals"),
    ]:
        with pytest.raises(InvalidArgument):
            check_options(bad, sources)


@pytest.mark.gpu
def test_cuda_gives_the_cpu_stems(tmp_path: Path) -> None:
    gpu = load_model("tiny", device="cuda")
    mix = music_like(4.0, 44100, seed=8)
    cpu_report = separate(TINY, mix, tmp_path / "cpu", SeparationOptions())
    gpu_report = separate(gpu, mix, tmp_path / "gpu", SeparationOptions())
    for name, path in cpu_report.stems.items():
        assert np.abs(read(path) - read(gpu_report.stems[name])).max() < 1e-3, name
    assert np.abs(sum(read(p) for p in gpu_report.stems.values()) - mix).max() < 1e-6


def test_negative_seed_with_shifts_is_accepted_and_deterministic(tmp_path: Path) -> None:
    """The proto's seed is an int64: a negative one must not crash the job inside numpy."""
    mix = music_like(1.0, 44100, seed=8)
    opts = SeparationOptions(segment_s=1.0, shifts=1, seed=-5)
    a = separate(TINY, mix, tmp_path / "a", opts)
    b = separate(TINY, mix, tmp_path / "b", opts)
    for name in a.stems:
        assert np.array_equal(read(a.stems[name]), read(b.stems[name]))


def test_overlap_near_one_is_refused() -> None:
    """Overlap 0.9999 would mean a model pass every few samples: a job that never ends."""
    with pytest.raises(InvalidArgument, match="overlap"):
        check_options(SeparationOptions(overlap=0.9999), TINY.sources)
    check_options(SeparationOptions(overlap=0.9), TINY.sources)


def test_batched_segments_give_the_same_stems(tmp_path: Path) -> None:
    mix = music_like(9.3, 44100, seed=8)  # stride 1.5 s: segments at 0, 1.5, ... 9 s
    opts = SeparationOptions(segment_s=2.0, overlap=0.25)
    passes: list[int] = []
    hook = TINY.model.register_forward_hook(lambda _m, args, _out: passes.append(args[0].shape[0]))
    try:
        one = separate(TINY, mix, tmp_path / "one", opts)
        solo = list(passes)
        passes.clear()
        seen: list[tuple[int, int]] = []
        four = separate(
            TINY, mix, tmp_path / "four", opts, segment_batch=4, on_segment=lambda d, t: seen.append((d, t))
        )
    finally:
        hook.remove()
    assert one.segments == four.segments == 7
    assert solo == [1] * 7
    # five full-length segments: a batch of four, then the fifth alone; the two partial ones alone
    assert passes == [4, 1, 1, 1]
    assert seen == [(i, four.segments) for i in range(1, four.segments + 1)]
    for name in one.stems:
        a, b = read(one.stems[name]), read(four.stems[name])
        assert a.shape == b.shape == mix.shape
        assert np.abs(a - b).max() < 1e-5, name
    assert np.abs(sum(read(p) for p in four.stems.values()) - mix).max() < 1e-6
