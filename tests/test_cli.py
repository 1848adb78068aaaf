"""The ``beatflow`` executable, driven as a user would (subprocesses) against the whole stack.

A producer's folder of stems goes through init, status, commit, an edit of one
stem (exactly one blob uploaded), a clone elsewhere (byte-identical), two
folders committing at once (the second is refused, then pulls and succeeds),
a checkout of an old commit; files that are not audio are reported and never
committed; wrong servers and tokens fail in one line; generation and
separation follow progress and write files; `diff --audio` prints the perceptual
diff per stem (regions, gain, deltas). Also the gateway's
``POST /api/audio/exists`` the client asks before uploading.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from beatflow.common import localservers
from tests.stack_fixtures import Stack, tone_wav

BEATFLOW = Path(sys.executable).parent / "beatflow"
PASSWORD = "correct horse battery"
STEMS = {"drums": 110.0, "bass": 55.0, "keys": 440.0, "vocals": 330.0}


def _env(stack: Stack, config_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEATFLOW_")}
    return {**env, "BEATFLOW_SERVER": stack.base_url, "BEATFLOW_CONFIG_DIR": str(config_dir), **extra}


def bf(
    env: dict[str, str], cwd: Path, *args: str, expect: int = 0, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    assert BEATFLOW.exists(), f"{BEATFLOW} is missing: pip install -e clients/cli (make test does)"
    proc = subprocess.run(
        [str(BEATFLOW), *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == expect, f"beatflow {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def bf_json(env: dict[str, str], cwd: Path, *args: str) -> Any:
    return json.loads(bf(env, cwd, *args, "--json").stdout)


def _audio_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".wav" and p.name != "notes.wav"}


@pytest.fixture(scope="module")
def user_env(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    config_dir = tmp_path_factory.mktemp("cli-config") / "beatflow"
    env = _env(stack, config_dir)
    name = f"cli{uuid.uuid4().hex[:8]}"
    bf(env, config_dir.parent, "login", "--signup", "-u", name, "--password-stdin", stdin=PASSWORD + "\n")
    creds = config_dir / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["username"] == name
    assert bf_json(env, config_dir.parent, "whoami")["username"] == name
    return env


def test_exists_answers_only_for_readable_blobs(stack: Stack) -> None:
    _a, alice = stack.signup("alice")
    _b, bob = stack.signup("bob")
    key = stack.upload(alice, tone_wav(1.0, freq=523.0))["blob_key"]
    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    with stack.client(alice) as http:
        r = http.post("/api/audio/exists", json={"blob_keys": [key, unknown, key]})
        assert r.status_code == 200, r.text
        assert r.json() == {"present": [key], "missing": [unknown]}
        assert http.post("/api/audio/exists", json={"blob_keys": ["nothex"]}).status_code == 422
        assert http.post("/api/audio/exists", json={"blob_keys": []}).status_code == 422
    with stack.client(bob) as http:  # alice's private upload is not bob's to know about
        assert http.post("/api/audio/exists", json={"blob_keys": [key]}).json() == {"present": [], "missing": [key]}
    with stack.client() as http:
        assert http.post("/api/audio/exists", json={"blob_keys": [key]}).status_code == 401


@pytest.mark.slow
def test_folder_of_stems_round_trip(user_env: dict[str, str], tmp_path: Path) -> None:
    env = user_env
    a = tmp_path / "a"
    a.mkdir()
    repo_name = f"song{uuid.uuid4().hex[:6]}"
    bf(env, a, "init", repo_name)
    for name, freq in STEMS.items():
        (a / f"{name}.wav").write_bytes(tone_wav(1.0, freq=freq))
    (a / "notes.wav").write_text("not audio at all, just a name ending in .wav")
    (a / "README.txt").write_text("session notes")
    originals = _audio_files(a)

    st = bf_json(env, a, "status")
    assert sorted(st["new"]) == sorted(STEMS) and st["modified"] == [] and st["deleted"] == []
    assert "notes.wav" in st["skipped"] and st["ignored"] == ["README.txt"]

    first = bf_json(env, a, "commit", "-m", "four stems")
    assert len(first["uploaded"]) == 4 and sorted(first["new"]) == sorted(STEMS)
    assert bf_json(env, a, "status")["new"] == []

    (a / "bass.wav").write_bytes(tone_wav(1.0, freq=65.0))
    st = bf_json(env, a, "status")
    assert (st["new"], st["modified"], st["deleted"]) == ([], ["bass"], [])
    second = bf_json(env, a, "commit", "-m", "deeper bass")
    assert second["uploaded"] == [hashlib.sha256((a / "bass.wav").read_bytes()).hexdigest()]

    log = bf_json(env, a, "log")
    assert [c["id"] for c in log] == [second["commit"], first["commit"]]
    assert all(s["name"] != "notes" for c in log for s in c["stems"])  # the non-audio file never went in

    b = tmp_path / "b"
    bf(env, tmp_path, "clone", repo_name, str(b))
    assert _audio_files(b) == _audio_files(a)
    assert not filecmp.dircmp(a, b, ignore=[".beatflow", "notes.wav", "README.txt"]).diff_files

    # Two folders commit different stems from the same head: the second is refused, pulls, then succeeds.
    (a / "drums.wav").write_bytes(tone_wav(1.0, freq=120.0))
    (b / "keys.wav").write_bytes(tone_wav(1.0, freq=466.0))
    bf(env, a, "commit", "-m", "drums from a")
    refused = bf(env, b, "commit", "-m", "keys from b", expect=5)
    assert "moved" in refused.stderr and "beatflow pull" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    bf(env, b, "pull")
    assert (b / "drums.wav").read_bytes() == (a / "drums.wav").read_bytes()
    assert bf_json(env, b, "status")["modified"] == ["keys"]  # the pull kept b's own change
    bf(env, b, "commit", "-m", "keys from b")
    bf(env, a, "pull")
    assert _audio_files(a) == _audio_files(b)

    # A local change in the way of a pull is never overwritten.
    (b / "vocals.wav").write_bytes(tone_wav(1.0, freq=350.0))
    bf(env, b, "commit", "-m", "vocals from b")
    mine = tone_wav(1.0, freq=360.0)
    (a / "vocals.wav").write_bytes(mine)
    blocked = bf(env, a, "pull", expect=5)
    assert "vocals" in blocked.stderr and (a / "vocals.wav").read_bytes() == mine
    (a / "vocals.wav").unlink()
    bf(env, a, "checkout", "main", "--force")

    # A branch and a conflicting change on main: the merge stops, then settles per stem.
    bf(env, b, "pull")
    bf(env, b, "branch", "alt", "--checkout")
    (b / "drums.wav").write_bytes(tone_wav(1.0, freq=150.0))
    bf(env, b, "commit", "-m", "alt drums")
    theirs = (b / "drums.wav").read_bytes()
    bf(env, b, "checkout", "main")
    (b / "drums.wav").write_bytes(tone_wav(1.0, freq=160.0))
    bf(env, b, "commit", "-m", "main drums")
    conflict = bf(env, b, "merge", "alt", expect=5)
    assert "drums" in conflict.stderr and "--theirs" in conflict.stderr
    bf(env, b, "merge", "alt", "--theirs", "drums")
    assert (b / "drums.wav").read_bytes() == theirs
    assert bf_json(env, b, "status")["modified"] == []

    # Tags, diffs between commits, branches, a fork, and a revert (the folder follows).
    bf(env, b, "tag", "v1", "-m", "mixed")
    assert [t["name"] for t in bf_json(env, b, "tag")] == ["v1"]
    d = bf_json(env, b, "diff", first["commit"], second["commit"])
    assert [(s["name"], s["change"]) for s in d["stems"] if s["change"] != "unchanged"] == [("bass", "changed")]
    assert {r["name"] for r in bf_json(env, b, "branch")} == {"main", "alt"}
    forked = bf_json(env, b, "fork", "--name", f"{repo_name}-fork")
    assert forked["forked_from_id"] == json.loads((b / ".beatflow" / "state.json").read_text())["repo_id"]
    keys_commit = next(c["id"] for c in bf_json(env, b, "log") if c["message"] == "keys from b")
    bf(env, b, "revert", keys_commit)
    assert (b / "keys.wav").read_bytes() == originals["keys.wav"]

    # A download cut short resumes from its partial file; a partial file that is not a prefix fails the hash
    # check, is dropped, and the rerun finishes.
    bf(env, a, "pull")
    drums = (a / "drums.wav").read_bytes()
    part = a / ".beatflow" / "partial" / f"{hashlib.sha256(drums).hexdigest()}.part"
    part.parent.mkdir(exist_ok=True)
    for prefix, code in ((drums[: len(drums) // 2], 0), (b"x" * (len(drums) // 2), 7)):
        (a / "drums.wav").unlink()
        part.write_bytes(prefix)
        failed = bf(env, a, "checkout", "main", "--force", expect=code)
        if code:
            assert "content hash" in failed.stderr and not (a / "drums.wav").exists() and not part.exists()
            bf(env, a, "checkout", "main", "--force")
        assert (a / "drums.wav").read_bytes() == drums and not part.exists()

    # Back to the first commit: the files are the originals again; a detached folder cannot commit.
    bf(env, a, "checkout", first["commit"])
    assert _audio_files(a) == originals
    assert bf_json(env, a, "status")["modified"] == []
    (a / "bass.wav").write_bytes(tone_wav(1.0, freq=70.0))
    assert "not on a branch" in bf(env, a, "commit", "-m", "nope", expect=2).stderr


def test_wrong_server_or_token_is_one_line(user_env: dict[str, str], tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{localservers.free_port()}"
    for env, code in (
        ({**user_env, "BEATFLOW_SERVER": dead}, 6),
        ({**user_env, "BEATFLOW_TOKEN": "not-a-token"}, 3),
    ):
        proc = bf(env, tmp_path, "whoami", expect=code)
        assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "not a BeatFlow working folder" in bf(user_env, tmp_path, "status", expect=2).stderr
    name = json.loads((Path(user_env["BEATFLOW_CONFIG_DIR"]) / "credentials.json").read_text())["username"]
    elsewhere = {**user_env, "BEATFLOW_CONFIG_DIR": str(tmp_path / "other-config")}
    wrong = bf(elsewhere, tmp_path, "login", "-u", name, "--password-stdin", stdin="not the password\n", expect=3)
    assert wrong.stderr.strip() == "beatflow: wrong username or password"
    assert not (tmp_path / "other-config" / "credentials.json").exists()


@pytest.mark.slow
def test_generate_then_separate_to_files(user_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "idea.wav"
    gen = bf(user_env, tmp_path, "generate", "dusty lo-fi drums", "--duration", "1", "--seed", "3", "-o", str(out))
    assert "generating:" in gen.stderr and "100%" in gen.stderr  # progress followed over SSE
    audio, rate = sf.read(out)
    assert rate > 0 and len(audio) > 0
    stems = bf_json(user_env, tmp_path, "separate", str(out), "-o", str(tmp_path / "stems"))
    assert len(stems["files"]) >= 2
    for path in stems["files"].values():
        data, _ = sf.read(path)
        assert len(data) > 0
    assert not list(tmp_path.glob("stems/*.part"))
    analysis = bf_json(user_env, tmp_path, "analyze", str(out))
    assert analysis["duration_s"] > 0 and "bpm" in analysis


def test_ctrl_c_cancels_the_task_on_the_server(stack: Stack, user_env: dict[str, str], tmp_path: Path) -> None:
    token = json.loads((Path(user_env["BEATFLOW_CONFIG_DIR"]) / "credentials.json").read_text())["token"]
    proc = subprocess.Popen(
        [str(BEATFLOW), "generate", "a long ambient drone", "--duration", "120", "-o", str(tmp_path / "long.wav")],
        cwd=tmp_path,
        env=user_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # "generating: task <id> queued" once the server took it
        task_id = first.split("task ", 1)[1].split()[0]
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(60) == 130, first + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "cancelled on the server" in rest and "Traceback" not in rest
    with stack.client(token) as http:
        # a running task stops at the worker's next check (a queued one at once): wait for it, bounded
        deadline = time.monotonic() + 60
        status = http.get(f"/api/ai/tasks/{task_id}").json()["status"]
        while status == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = http.get(f"/api/ai/tasks/{task_id}").json()["status"]
        assert status == "cancelled"
    assert not (tmp_path / "long.wav").exists()


def _wav(x: Any, rate: int = 16000) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    sf.write(buf, np.stack([x, x], axis=1).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_diff_audio_prints_regions_and_gain(user_env: dict[str, str], tmp_path: Path) -> None:
    """A 2 s region replaced in one stem, another stem 3 dB louder: the perceptual diff says so, per stem."""
    import numpy as np

    env, rate = user_env, 16000
    t = np.arange(6 * rate) / rate
    lead = 0.3 * np.sin(2 * np.pi * 220 * t)
    pad = 0.2 * np.sin(2 * np.pi * 330 * t)
    folder = tmp_path / "song"
    folder.mkdir()
    bf(env, folder, "init", f"diffs{uuid.uuid4().hex[:6]}")
    (folder / "lead.wav").write_bytes(_wav(lead))
    (folder / "pad.wav").write_bytes(_wav(pad))
    (folder / "bass.wav").write_bytes(tone_wav(6.0, freq=55.0))
    first = bf_json(env, folder, "commit", "-m", "first takes")["commit"]
    changed = lead.copy()
    changed[2 * rate : 4 * rate] = 0.3 * np.sin(2 * np.pi * 1500 * t[: 2 * rate])
    (folder / "lead.wav").write_bytes(_wav(changed))
    (folder / "pad.wav").write_bytes(_wav(pad * 10 ** (3 / 20)))
    second = bf_json(env, folder, "commit", "-m", "new lead, louder pad")["commit"]

    assert "give BASE" in bf(env, folder, "diff", "--audio", expect=2).stderr
    plain = bf(env, folder, "diff", first, second, "--audio", "--wait", "120")
    assert "comparing audio" in plain.stderr and "100%" in plain.stderr  # progress over SSE, on stderr
    lines = plain.stdout.splitlines()
    assert "= bass: unchanged" in lines
    pad_line = next(line for line in lines if line.startswith("~ pad:"))
    gain = re.search(r"gain change ([+-][0-9.]+) dB", pad_line)
    assert gain and abs(float(gain.group(1)) - 3.0) <= 0.2, pad_line
    lead_at = lines.index("~ lead: 1 changed region")
    span = re.match(r"\s+([0-9.]+) s - +([0-9.]+) s", lines[lead_at + 1])
    assert span, lines[lead_at + 1]
    assert abs(float(span.group(1)) - 2.0) <= 0.1 and abs(float(span.group(2)) - 4.0) <= 0.1, lines[lead_at + 1]
    assert "loudness" in lines[lead_at + 2] and "LU" in lines[lead_at + 2] and "tempo" in lines[lead_at + 2]

    out = bf_json(env, folder, "diff", first, second, "--audio")  # the same pair: the same (finished) task
    audio = out["audio"]
    assert audio["bass"]["status"] == "unchanged"
    assert audio["pad"]["status"] == "gain_only" and abs(audio["pad"]["gain_db"] - 3.0) <= 0.2
    (region,) = audio["lead"]["regions"]
    assert abs(region["start_s"] - 2.0) <= 0.1 and abs(region["end_s"] - 4.0) <= 0.1
