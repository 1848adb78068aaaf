"""Perceptual diff on synthetic audio of known changes, directly and as a separator job."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from beatflow.separator import audiodiff
from beatflow.separator.testsignals import click_track, encode, music_like
from beatflow.v1 import jobs_pb2, separator_pb2

SR = 44100


def _write(path: Path, audio: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, audio, sr, subtype="FLOAT")
    return path


def _replacement(seconds: float, seed: int = 3) -> np.ndarray:
    """A tone plus noise: sounds nothing like the music it replaces."""
    n = int(seconds * SR)
    tone = 0.3 * np.sin(2 * np.pi * 1234 * np.arange(n) / SR)
    noise = 0.05 * np.random.default_rng(seed).standard_normal((n, 2))
    return (tone[:, None] + noise).astype(np.float32)


@pytest.fixture(scope="module")
def take(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    audio = music_like(30.0, SR, seed=1)
    return _write(tmp_path_factory.mktemp("take") / "from.wav", audio), audio


def test_a_replaced_region_is_reported_where_it_is(take, tmp_path: Path) -> None:
    path, audio = take
    changed = audio.copy()
    changed[int(12.5 * SR) : int(14.5 * SR)] = _replacement(2.0)
    diff = audiodiff.diff_files(path, _write(tmp_path / "to.wav", changed), with_summary=False)
    assert diff.status == "changed" and diff.offset_s == 0.0 and diff.gain_db == 0.0
    assert len(diff.regions) == 1, diff.regions
    region = diff.regions[0]
    assert region.start_s == pytest.approx(12.5, abs=0.1) and region.end_s == pytest.approx(14.5, abs=0.1)
    # the curve for drawing: high inside the region, low outside
    bins = np.array(diff.curve)
    t = np.arange(len(bins)) * diff.curve_bin_s
    assert bins[(t > 12.7) & (t < 14.2)].min() > 0.5
    assert bins[(t < 12.2) | (t > 14.8)].max() < 0.25
    assert len(bins) == pytest.approx(30.0 / audiodiff.CURVE_BIN_S, abs=2)


def test_a_gain_change_is_a_gain_not_a_region(tmp_path: Path) -> None:
    audio = music_like(10.0, SR, seed=5)
    louder = audio * np.float32(10 ** (3 / 20))
    diff = audiodiff.diff_files(_write(tmp_path / "from.wav", audio), _write(tmp_path / "to.wav", louder))
    assert diff.status == "gain_only" and diff.regions == []
    assert diff.gain_db == pytest.approx(3.0, abs=0.2)
    assert diff.summary["loudness_delta_lu"] == pytest.approx(3.0, abs=0.2)
    assert diff.summary["peak_delta_db"] == pytest.approx(3.0, abs=0.2)
    assert diff.summary["duration_delta_s"] == 0.0 and not diff.summary["key_changed"]


def test_a_constant_offset_is_aligned_away(take, tmp_path: Path) -> None:
    path, audio = take
    late = np.concatenate([np.zeros((int(0.337 * SR), 2), np.float32), audio])  # starts 337 ms later
    diff = audiodiff.diff_files(path, _write(tmp_path / "to.wav", late), with_summary=False)
    assert diff.offset_s == pytest.approx(0.337, abs=0.003)
    assert diff.regions == [] and diff.status == "unchanged"


@pytest.mark.slow
def test_a_ten_minute_pair_stays_in_bounded_memory(tmp_path: Path) -> None:
    """Two 10-minute stereo takes (212 MB each once decoded to float32): the diff keeps far less."""
    clip = music_like(10.0, SR, seed=2)
    paths = []
    for name, change in (("from", None), ("to", 300.0)):
        path = tmp_path / f"{name}.wav"
        with sf.SoundFile(path, "w", SR, 2, subtype="PCM_16") as fh:
            for i in range(60):
                block = clip if change is None or i != int(change // 10) else _replacement(10.0)
                fh.write(block)
        paths.append(path)
    tracemalloc.start()
    try:
        diff = audiodiff.diff_files(paths[0], paths[1], with_summary=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert [(round(r.start_s), round(r.end_s)) for r in diff.regions] == [(300, 310)]


async def test_diff_job_identical_changed_added_and_cached(client) -> None:  # type: ignore[no-untyped-def]
    audio = music_like(8.0, SR, seed=4)
    changed = audio.copy()
    changed[2 * SR : 4 * SR] = _replacement(2.0)
    a = client.store.put_bytes(encode(audio, SR, "FLAC"))
    b = client.store.put_bytes(encode(changed, SR, "FLAC"))
    garbage = client.store.put_bytes(b"not audio at all, and never decoded")
    pairs = [
        separator_pb2.StemPair(name="same", from_blob=garbage, to_blob=garbage),
        separator_pb2.StemPair(name="lead", from_blob=a, to_blob=b),
        separator_pb2.StemPair(name="new", from_blob="", to_blob=a),
    ]
    job = await client.separator.SubmitAudioDiff(separator_pb2.AudioDiffRequest(stems=pairs, owner="u1"))
    assert job.kind == "diff"
    final, events = await client.wait_job(job.id, timeout_s=120)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    stems = json.loads(final.result_json)["stems"]
    assert stems["same"]["status"] == "unchanged" and stems["same"]["decoded"] is False
    assert stems["new"]["status"] == "added"
    lead = stems["lead"]
    assert lead["status"] == "changed" and len(lead["regions"]) == 1
    assert lead["regions"][0]["start_s"] == pytest.approx(2.0, abs=0.1)
    assert lead["regions"][0]["end_s"] == pytest.approx(4.0, abs=0.1)
    assert lead["summary"]["to"]["duration_s"] == pytest.approx(8.0, abs=0.01)
    stages = [e.stage for e in events if e.stage]
    assert any("lead: decoding" in s for s in stages), stages
    # the same pair again (another request): served from the cache, nothing decoded
    again = await client.separator.SubmitAudioDiff(
        separator_pb2.AudioDiffRequest(stems=[separator_pb2.StemPair(name="x", from_blob=a, to_blob=b)])
    )
    final2, events2 = await client.wait_job(again.id, timeout_s=60)
    assert json.loads(final2.result_json)["stems"]["x"] == lead
    assert not any("decoding" in e.stage for e in events2)


async def test_diff_job_refuses_bad_pairs(client) -> None:  # type: ignore[no-untyped-def]
    import grpc

    garbage = client.store.put_bytes(b"not audio")
    good = client.store.put_bytes(encode(music_like(1.0, SR), SR, "FLAC"))
    for stems in (
        [],
        [separator_pb2.StemPair(name="x")],
        [separator_pb2.StemPair(name="x", from_blob=garbage, to_blob=good)],
        [separator_pb2.StemPair(name="x", from_blob="nothex", to_blob=good)],
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.separator.SubmitAudioDiff(separator_pb2.AudioDiffRequest(stems=stems))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_tempo_delta_only_where_both_sides_have_a_beat(tmp_path: Path) -> None:
    """Clicks at 100 then 120 BPM: +20 BPM. Two steady tones: no beat, so no tempo delta at all."""
    slow, fast = (np.stack([click_track(bpm, 8.0, SR, seed=bpm)] * 2, 1).astype(np.float32) for bpm in (100, 120))
    clicks = audiodiff.diff_files(_write(tmp_path / "a.wav", slow), _write(tmp_path / "b.wav", fast))
    assert clicks.summary["tempo_reliable"] and clicks.summary["tempo_delta_bpm"] == pytest.approx(20, abs=2)
    t = np.arange(int(8.0 * SR)) / SR
    tones = [np.stack([0.3 * np.sin(2 * np.pi * f * t)] * 2, 1).astype(np.float32) for f in (440.0, 660.0)]
    steady = audiodiff.diff_files(_write(tmp_path / "c.wav", tones[0]), _write(tmp_path / "d.wav", tones[1]))
    assert steady.status == "changed"
    assert steady.summary["tempo_reliable"] is False and steady.summary["tempo_delta_bpm"] is None
    json.dumps(steady.summary)
