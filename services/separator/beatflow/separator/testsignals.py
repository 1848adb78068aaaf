"""Synthetic test audio; it lives in :mod:`beatflow.common.testsignals` (the generator's tests use it too)."""

from beatflow.common.testsignals import (
    HARMONIC,
    MAJOR_SCALE,
    MINOR_SCALE,
    PITCHES,
    PROGRESSIONS,
    chord_progression,
    click_track,
    drum_pattern,
    encode,
    music_like,
)

__all__ = [
    "HARMONIC",
    "MAJOR_SCALE",
    "MINOR_SCALE",
    "PITCHES",
    "PROGRESSIONS",
    "chord_progression",
    "click_track",
    "drum_pattern",
    "encode",
    "music_like",
]
