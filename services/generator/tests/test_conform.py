"""Conforming results to a requested tempo and key, on synthesized material with known tempo and key."""

from __future__ import annotations

import numpy as np
import pytest

from beatflow.common.audioanalysis import ANALYSIS_SR, estimate_key, estimate_tempo
from beatflow.common.testsignals import chord_progression, click_track
from beatflow.generator.conform import RequestedKey, conform, cut_loop, key_shift, parse_key, tempo_ratio
from beatflow.generator.prompts import Hints
from beatflow.generator.request import GenerationSpec, Limits, validate

SR = 32000


def groove(tonic: str, mode: str, bpm: float, seconds: float) -> np.ndarray:
    """Chords (one per bar) over accented clicks, as ``(1, samples)`` at SR."""
    chords, clicks = chord_progression(tonic, mode, seconds, SR, bpm=bpm), click_track(bpm, seconds, SR)
    n = min(len(chords), len(clicks))
    y = chords[:n] + 0.4 * clicks[:n]
    return (0.8 * y / np.abs(y).max())[None, :].astype(np.float32)


def mono22(wav: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.resample(wav.mean(axis=0), orig_sr=SR, target_sr=ANALYSIS_SR)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A minor", RequestedKey(9, "minor")),
        ("in A minor", RequestedKey(9, "minor")),
        ("Am", RequestedKey(9, "minor")),
        ("F# major", RequestedKey(6, "major")),
        ("Bb", RequestedKey(10, "major")),
        ("E flat minor", RequestedKey(3, "minor")),
        ("c#m", RequestedKey(1, "minor")),
        ("dorian vibes", None),
        ("H major", None),
    ],
)
def test_parse_key(text: str, expected: RequestedKey | None) -> None:
    assert parse_key(text) == expected


def test_key_shift_takes_the_smallest_interval_and_relatives_match() -> None:
    assert key_shift((2, "major"), RequestedKey(4, "major")) == 2  # D -> E
    assert key_shift((4, "major"), RequestedKey(2, "major")) == -2
    assert key_shift((0, "major"), RequestedKey(9, "minor")) == 0  # C major is A minor's relative
    assert key_shift((9, "minor"), RequestedKey(0, "major")) == 0
    assert key_shift((0, "major"), RequestedKey(7, "major")) == -5  # down a fourth, not up a fifth
    assert key_shift((0, "major"), RequestedKey(6, "major")) in (6, -6)
    assert key_shift((2, "minor"), RequestedKey(4, "minor")) == 2


def test_half_and_double_tempo_are_the_same_groove() -> None:
    assert tempo_ratio(64.0, 128.0) == (128.0, 1.0)
    assert tempo_ratio(240.0, 128.0) == (120.0, pytest.approx(128 / 120))
    assert tempo_ratio(100.0, 128.0)[1] == pytest.approx(1.28)


def test_120_bpm_conformed_to_128_measures_128() -> None:
    wav = groove("A", "minor", 120, 12.0)
    out, report = conform(wav, SR, bpm=128)
    assert report["before"]["bpm"] == pytest.approx(120, abs=1)
    assert report["applied"]["time_stretch"] == pytest.approx(128 / 120, rel=0.01)
    assert report["applied"]["pitch_shift_semitones"] == 0
    assert estimate_tempo(mono22(out)).bpm == pytest.approx(128, abs=1)
    assert report["after"]["bpm"] == pytest.approx(128, abs=1)
    assert out.shape[1] == pytest.approx(wav.shape[1] * 120 / 128, rel=0.01)


def test_d_major_conformed_to_e_major_measures_e_major() -> None:
    wav = groove("D", "major", 100, 10.0)
    out, report = conform(wav, SR, key=parse_key("E major"))
    assert report["before"]["key"] == "D major"
    assert report["applied"] == {"time_stretch": 1.0, "pitch_shift_semitones": 2, "loop": None}
    key = estimate_key(mono22(out))
    assert (key.tonic, key.mode) == ("E", "major")
    assert report["after"]["key"] == "E major"
    assert out.shape == wav.shape or abs(out.shape[1] - wav.shape[1]) <= SR // 100  # tempo unchanged


def test_relative_key_and_right_tempo_change_nothing() -> None:
    wav = groove("A", "minor", 128, 8.0)
    out, report = conform(wav, SR, bpm=64, key=parse_key("C major"))
    assert report["applied"] == {"time_stretch": 1.0, "pitch_shift_semitones": 0, "loop": None}
    assert np.array_equal(out, wav)
    assert report["before"] == report["after"] and report["notes"]


def test_far_tempo_is_left_alone() -> None:
    wav = groove("C", "major", 90, 8.0)
    _, report = conform(wav, SR, bpm=120)  # 90 * 4/3, and 180 * 2/3: both over 25 % away
    assert report["applied"]["time_stretch"] == 1.0
    assert any("more than 25%" in n for n in report["notes"])


def test_loop_is_whole_bars_from_a_downbeat_and_wraps_without_a_click() -> None:
    # Start 0.37 s into a bar so the first downbeat is not at 0.
    wav = groove("E", "minor", 120, 14.0)[:, int(0.37 * SR) :]
    out, report = conform(wav, SR, bpm=128, loop=True)
    info = report["applied"]["loop"]
    assert info is not None and info["downbeat_detected"]
    bar = 4 * 60 / 128
    bars = out.shape[1] / SR / bar
    assert abs(bars - round(bars)) * bar <= 0.010 and round(bars) == info["bars"] >= 2
    # It starts on a bar line of the stretched audio: the original's (every 2 s, from 1.63 s) times 120/128.
    offset = (info["start_s"] - (2.0 - 0.37) * 120 / 128) % bar
    assert min(offset, bar - offset) <= 0.03
    x = out[0]
    steps = np.abs(np.diff(x))
    wrap = abs(float(x[0]) - float(x[-1]))
    assert wrap <= np.percentile(steps, 99), "the end joins the start like any two neighbouring samples"
    assert report["after"]["bpm"] == pytest.approx(128, abs=1)


def test_cut_loop_crossfade_joins_end_to_start() -> None:
    rng = np.random.default_rng(0)
    wav = np.cumsum(rng.standard_normal((2, SR * 6)), axis=1).astype(np.float32)  # a wandering signal
    wav /= np.abs(wav).max()
    cut = cut_loop(wav, SR, 120.0, 0.5)
    assert cut is not None
    out, info = cut
    assert info["bars"] == 2 and out.shape == (2, 2 * 2 * SR)
    steps = np.abs(np.diff(out, axis=1)).max()
    assert np.all(np.abs(out[:, 0] - out[:, -1]) <= steps)
    plain = wav[:, SR // 2 : SR // 2 + out.shape[1]]
    assert np.abs(plain[:, 0] - plain[:, -1]).max() > steps  # without the crossfade the wrap jumps
    assert cut_loop(wav[:, :SR], SR, 120.0, 0.5) is None  # less than a bar after the downbeat


def test_conform_default_follows_the_hints() -> None:
    limits = Limits()
    assert not validate(GenerationSpec(prompt="x"), limits).conforms
    assert validate(GenerationSpec(prompt="x", hints=Hints(bpm=128)), limits).conforms
    assert validate(GenerationSpec(prompt="x", hints=Hints(key="A minor")), limits).conforms
    assert not validate(GenerationSpec(prompt="x", hints=Hints(bpm=128), conform=False), limits).conforms
    spec = validate(GenerationSpec(prompt="x", hints=Hints(bpm=128), loop=True), limits)
    assert GenerationSpec.from_dict(spec.to_dict()) == spec
    from beatflow.common.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="not a key"):
        validate(GenerationSpec(prompt="x", hints=Hints(key="spooky"), conform=True), limits)
    validate(GenerationSpec(prompt="x", hints=Hints(key="spooky")), limits)  # default: the hint stays a word
