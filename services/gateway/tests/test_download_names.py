"""Readable download names: slug of a prompt or stem name plus the blob's short id."""

from __future__ import annotations

from beatflow.gateway.convert import human_filename, slug

KEY = "1a2b3c4d" + "0" * 56


def test_slug_keeps_words_and_drops_the_rest() -> None:
    assert slug("Upbeat électro, 128 BPM!") == "upbeat-electro-128-bpm"
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug('a"b\r\nc') == "a-b-c"  # nothing that could break the header
    assert slug("鼓") == ""
    assert len(slug("x" * 500)) <= 48


def test_names_carry_the_short_id_and_extension() -> None:
    assert human_filename("drums", KEY) == "drums-1a2b3c4d.wav"
    assert human_filename("", KEY, "audio/flac") == "audio-1a2b3c4d.flac"
    assert human_filename("鼓", KEY) == "audio-1a2b3c4d.wav"
    # Passing a download_name back gives the same name, not a doubled suffix.
    assert human_filename(human_filename("Lo-fi take", KEY), KEY) == "lo-fi-take-1a2b3c4d.wav"
