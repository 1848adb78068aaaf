"""``diff --audio`` without a server: each stem's perceptual diff in words, and the bounded wait."""

from __future__ import annotations

import time

import pytest

from beatflow.cli import errors
from beatflow.cli.errors import CliError
from beatflow.cli.main import _audio_lines
from beatflow.cli.tasks import _read_timeout, _until

SUMMARY = {
    "from": {"key_tonic": "A", "key_mode": "minor"},
    "to": {"key_tonic": "C", "key_mode": "major"},
    "loudness_delta_lu": 1.24,
    "peak_delta_db": -0.5,
    "tempo_delta_bpm": 0.0,
    "key_changed": True,
    "duration_delta_s": 0.25,
}


def test_each_verdict_in_words() -> None:
    assert _audio_lines("bass", {"status": "unchanged"}) == ["= bass: unchanged"]
    assert _audio_lines("fx", {"status": "added"}) == ["+ fx: added"]
    gain = _audio_lines("pad", {"status": "gain_only", "gain_db": 3.02, "regions": [], "summary": {}})
    assert gain == ["~ pad: gain change +3.0 dB (no changed regions)"]
    lines = _audio_lines(
        "lead",
        {
            "status": "changed",
            "gain_db": -1.5,
            "offset_s": 0.5,
            "regions": [{"start_s": 2.0, "end_s": 4.25, "score": 0.5}, {"start_s": 10.0, "end_s": 10.5, "score": 0.2}],
            "summary": SUMMARY,
        },
    )
    assert lines[0] == "~ lead: 2 changed regions, gain -1.5 dB, starts 0.500 s later"
    assert lines[1].split() == ["2.00", "s", "-", "4.25", "s", "(2.25", "s,", "score", "0.50)"]
    assert lines[2].split()[:2] == ["10.00", "s"]
    assert lines[3] == ("    loudness +1.2 LU, peak -0.5 dB, tempo +0.0 BPM, key A minor -> C major, duration +0.25 s")
    unclear = {**SUMMARY, "tempo_delta_bpm": None, "tempo_reliable": False, "key_reliable": False}
    [_head, summary] = _audio_lines("pad", {"status": "changed", "regions": [], "summary": unclear})
    assert summary == "    loudness +1.2 LU, peak -0.5 dB, tempo unclear, key unclear, duration +0.25 s"


def test_a_progress_stream_past_its_deadline_stops_with_the_task_id() -> None:
    lines = iter([": keep-alive", ": keep-alive"])
    with pytest.raises(CliError) as caught:
        list(_until(lines, time.monotonic() - 1, "t123", "comparing audio"))
    assert caught.value.code == errors.FAILED and "t123" in caught.value.message
    assert list(_until(iter(["a", "b"]), None, "t", "x")) == ["a", "b"]
    assert _read_timeout(time.monotonic() + 5) <= 6.5 and _read_timeout(None) == 60.0
