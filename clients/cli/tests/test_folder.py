"""The client's folder logic without a server: scanning, the hash cache, status, what a switch may touch."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
from pathlib import Path

import pytest

from beatflow.cli import config
from beatflow.cli.sync import plan
from beatflow.cli.tasks import output_paths, parse_sse
from beatflow.cli.workdir import Folder, HeadStem, State, sniff


def wav(seed: int, frames: int = 64) -> bytes:
    data = bytes((seed + i) % 256 for i in range(frames * 2))
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder.create(tmp_path, State("http://server", "r1", "song", "main"))


def test_sniff_judges_content_not_names() -> None:
    assert sniff(wav(1)[:64]) == "audio/wav"
    assert sniff(b"fLaC\x00\x00") == "audio/flac"
    assert sniff(b"OggS\x00") == "audio/ogg"
    assert sniff(b"ID3\x04") == "audio/mpeg"
    assert sniff(b"hello, this is text") == ""


def test_status_by_hash_and_bad_files_skipped(folder: Folder) -> None:
    root = folder.root
    (root / "drums.wav").write_bytes(wav(1))
    (root / "bass.wav").write_bytes(wav(2))
    (root / "notes.wav").write_text("text, not audio")
    (root / "pad.wav").write_bytes(wav(3))
    (root / "pad.flac").write_bytes(b"fLaC" + b"\x00" * 40)
    (root / "README.txt").write_text("notes")
    state = State(
        "http://server", "r1", "song", "main", "c1", {"drums": HeadStem(sha(wav(1))), "gone": HeadStem("0" * 64)}
    )
    st = folder.status(state)
    assert (st.new, st.modified, st.deleted, st.unchanged) == (["bass"], [], ["gone"], ["drums"])
    assert set(st.problems) == {"notes.wav", "pad.wav", "pad.flac"} and st.ignored == ["README.txt"]

    (root / "drums.wav").write_bytes(wav(9))
    assert folder.status(state).modified == ["drums"]


def test_hash_cache_is_keyed_on_size_and_mtime(folder: Folder) -> None:
    path = folder.root / "keys.wav"
    path.write_bytes(wav(4))
    assert folder.scan().stems["keys"].sha256 == sha(wav(4))
    index = json.loads((folder.meta / "index.json").read_text())
    assert index["keys.wav"][3] == sha(wav(4))
    # A cached entry is trusted while size and mtime match (no audio is read) ...
    index["keys.wav"][3] = "f" * 64
    (folder.meta / "index.json").write_text(json.dumps(index))
    assert folder.scan().stems["keys"].sha256 == "f" * 64
    # ... and recomputed when either changes.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert folder.scan().stems["keys"].sha256 == sha(wav(4))


def test_switch_never_overwrites_local_changes(folder: Folder) -> None:
    root = folder.root
    (root / "drums.wav").write_bytes(wav(1))  # unchanged since head
    (root / "bass.wav").write_bytes(wav(22))  # changed locally
    state = State("s", "r", "n", "main", "c1", {"drums": HeadStem(sha(wav(1))), "bass": HeadStem(sha(wav(2)))})
    scan = folder.scan()
    target_moves_drums = {
        "stems": [{"name": "drums", "blob_key": sha(wav(11))}, {"name": "bass", "blob_key": sha(wav(2))}]
    }
    assert plan(state, scan, target_moves_drums, force=False) == (["drums"], [])
    target_moves_bass = {
        "stems": [{"name": "drums", "blob_key": sha(wav(1))}, {"name": "bass", "blob_key": sha(wav(3))}]
    }
    assert plan(state, scan, target_moves_bass, force=False) == ([], ["bass"])
    assert plan(state, scan, target_moves_bass, force=True) == (["bass"], [])
    target_same_as_local = {
        "stems": [{"name": "drums", "blob_key": sha(wav(1))}, {"name": "bass", "blob_key": sha(wav(22))}]
    }
    assert plan(state, scan, target_same_as_local, force=False) == ([], [])
    assert plan(state, scan, {"stems": []}, force=False) == (["drums"], ["bass"])


def test_credentials_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEATFLOW_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("BEATFLOW_SERVER", raising=False)
    monkeypatch.delenv("BEATFLOW_TOKEN", raising=False)
    path = config.save(config.Credentials("http://x:8000", "tok", "me"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (config.server(), config.token()) == ("http://x:8000", "tok")
    monkeypatch.setenv("BEATFLOW_TOKEN", "env-token")
    monkeypatch.setenv("BEATFLOW_SERVER", "http://y/")
    assert (config.server(), config.token()) == ("http://y", "env-token")
    assert config.forget() and not path.exists()


def test_sse_parsing_and_output_names() -> None:
    stream = io.StringIO(
        "retry: 2000\n\n: keep-alive\n\n"
        'event: progress\nid: 1-0\ndata: {"progress": 0.5}\n\n'
        'event: done\ndata: {"task": {}}\n\n'
    )
    assert list(parse_sse(stream.read().splitlines())) == [("progress", {"progress": 0.5}), ("done", {"task": {}})]
    files = {"audio": {"filename": "a.wav"}, "audio.1": {"filename": "b.wav"}}
    assert output_paths(files, Path("out/x.wav"), "gen") == {
        "audio": Path("out/x-1.wav"),
        "audio.1": Path("out/x-2.wav"),
    }
    assert output_paths({"audio": {"filename": "a.flac"}}, None, "gen") == {"audio": Path("gen.flac")}
