"""The seed guide's workflow, walked over HTTP against the whole stack.

Create a repository, generate music (tiny MusicGen), watch progress over SSE
and a WebSocket, download the audio (streamed, ranged and presigned), separate
it into stems (tiny Demucs), commit them, change one stem on a branch, diff,
merge (clean, then with a conflict and its resolution), revert, blame, fork,
and read the history and graph — each step asserted on real results.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import soundfile as sf
from websockets.sync.client import connect

from beatflow.gateway.app import create_app
from beatflow.gateway.backend_clients import Backends
from beatflow.gateway.config import GatewaySettings
from tests.stack_fixtures import Stack, tone_wav

SECONDS = 2.0
TERMINAL = {"succeeded", "failed", "cancelled", "dead"}


@dataclass
class Generation:
    token: str
    task_id: str
    key: str
    events: list[tuple[str, dict[str, Any]]]
    task: dict[str, Any]

    @property
    def audio(self) -> dict[str, Any]:
        return dict(self.task["files"]["audio"])


@pytest.fixture(scope="module")
def alice(stack: Stack) -> str:
    return stack.signup("alice")[1]


@pytest.fixture(scope="module")
def generation(stack: Stack, alice: str) -> Generation:
    key = f"gen-{uuid.uuid4().hex}"
    body = {"prompt": "Upbeat electronic music", "bpm": 128, "mood": "energetic", "duration": SECONDS, "seed": 7}
    with stack.client(alice) as http:
        r = http.post("/api/ai/generate", json=body, headers={"Idempotency-Key": key})
        assert r.status_code == 202, r.text
        task = r.json()
    assert task["status"] in {"queued", "running"}
    events = stack.sse_events(alice, task["task_id"])
    final = events[-1][1]["task"]
    assert final["status"] == "succeeded", final
    return Generation(alice, task["task_id"], key, events, final)


def _get(http: httpx.Client, url: str, status: int = 200, **kwargs: Any) -> Any:
    r = http.get(url, **kwargs)
    assert r.status_code == status, f"GET {url}: {r.status_code} {r.text[:500]}"
    return r.json()


def _post(http: httpx.Client, url: str, body: Any = None, status: int = 201, **kwargs: Any) -> Any:
    r = http.post(url, json=body, **kwargs)
    assert r.status_code == status, f"POST {url}: {r.status_code} {r.text[:500]}"
    return r.json()


def _download(http: httpx.Client, url: str) -> bytes:
    r = http.get(url, params={"redirect": "false"})
    assert r.status_code == 200, r.text[:300]
    return r.content


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), always_2d=True)
    return audio, rate


def _scaled_wav(data: bytes, gain: float) -> bytes:
    audio, rate = _decode(data)
    buf = io.BytesIO()
    sf.write(buf, (audio * gain).astype(np.float32), rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


# --- health, docs ---------------------------------------------------------------


def test_health_reports_every_backend_serving(stack: Stack) -> None:
    with stack.client() as http:
        health = _get(http, "/health?strict=true")
        assert health == {
            "status": "ok",
            "backends": {"vcs": "SERVING", "generator": "SERVING", "separator": "SERVING"},
        }
        assert "swagger" in http.get("/docs").text.lower()
        paths = _get(http, "/openapi.json")["paths"]
    for seed_path in [
        "/api/ai/generate",
        "/api/ai/status/{task_id}",
        "/api/ai/separate-stems",
        "/api/ai/analyze-audio",
        "/api/ai/hum-to-beat",
        "/api/vcs/commit/{repo_id}",
        "/api/vcs/commit/{commit_id}",
        "/api/vcs/history/{repo_id}",
        "/api/vcs/fork",
        "/api/repositories/create",
        "/api/repositories/{repo_id}",
        "/api/audio/download/{filename}",
        "/api/audio/upload",
    ]:
        assert seed_path in paths, seed_path


# --- generation and progress ---------------------------------------------------------


def test_generation_progress_over_sse_from_the_start(generation: Generation) -> None:
    names = [name for name, _ in generation.events]
    assert names[-1] == "done" and set(names[:-1]) <= {"progress"}
    states = [data["status"] for _, data in generation.events]
    assert states[0] == "queued"  # the history from the very start
    assert "running" in states and states[-1] == "succeeded"
    progress = [data["progress"] for _, data in generation.events]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len({data["event_id"] for _, data in generation.events}) == len(generation.events)
    assert generation.audio["blob_key"] == generation.events[-1][1]["files"]["audio"]["blob_key"]


def test_late_websocket_subscriber_sees_the_whole_history(stack: Stack, generation: Generation) -> None:
    url = stack.base_url.replace("http://", "ws://") + f"/ws/tasks/{generation.task_id}"
    messages = []
    with connect(f"{url}?access_token={generation.token}") as ws:
        for raw in ws:
            messages.append(json.loads(raw))
        assert ws.close_code == 1000
    assert [m["event_id"] for m in messages] == [d["event_id"] for _, d in generation.events]
    assert messages[-1]["type"] == "done" and messages[-1]["task"]["status"] == "succeeded"
    # SSE resumes after a given event (Last-Event-ID), replaying only what follows.
    second = generation.events[1][1]["event_id"]
    with (
        stack.client(generation.token) as http,
        http.stream("GET", f"/api/ai/tasks/{generation.task_id}/events", headers={"Last-Event-ID": second}) as response,
    ):
        ids = [json.loads(line[5:])["event_id"] for line in response.iter_lines() if line.startswith("data:")]
    assert ids == [d["event_id"] for _, d in generation.events[2:]]


def test_status_and_idempotency(stack: Stack, generation: Generation) -> None:
    with stack.client(generation.token) as http:
        status = _get(http, f"/api/ai/status/{generation.task_id}")
        # The seed guide's shape ("success" and "result"), with the precise state alongside.
        assert status["status"] == "success" and status["state"] == "succeeded" and status["progress"] == 1.0
        assert status["files"] == generation.task["files"]
        assert status["result"]["audio_url"] == generation.task["files"]["audio"]["download_url"]
        assert _get(http, f"/api/ai/tasks/{generation.task_id}")["status"] == "succeeded"
        body = {"prompt": "Upbeat electronic music", "bpm": 128, "mood": "energetic", "duration": SECONDS, "seed": 7}
        again = _post(http, "/api/ai/generate", body, 202, headers={"Idempotency-Key": generation.key})
        assert again["task_id"] == generation.task_id
        # The key is scoped to the operation: the same key on another kind of work is a new task.
        separate = {"audio_blob": generation.audio["blob_key"], "model": "tiny"}
        sep = _post(http, "/api/ai/separate-stems", separate, 202, headers={"Idempotency-Key": generation.key})
        assert sep["task_id"] != generation.task_id and sep["kind"] != generation.task["kind"]
        assert (
            _post(http, "/api/ai/separate-stems", separate, 202, headers={"Idempotency-Key": generation.key})["task_id"]
            == sep["task_id"]
        )
        _post(http, f"/api/ai/tasks/{sep['task_id']}/cancel", None, 200)
    # The key is scoped to the user: the same key from someone else is new work.
    _bob, bob = stack.signup("bob")
    with stack.client(bob) as http:
        other = _post(
            http, "/api/ai/generate", {"prompt": "x", "duration": 1}, 202, headers={"Idempotency-Key": generation.key}
        )
        assert other["task_id"] != generation.task_id
        cancelled = _post(http, f"/api/ai/tasks/{other['task_id']}/cancel", None, 200)
        assert cancelled["status"] in {"running", "cancelled"}  # a running job stops at its next step
    assert stack.finish(bob, other["task_id"])["status"] in {"cancelled", "succeeded"}


def test_cancel_a_task(stack: Stack, alice: str) -> None:
    with stack.client(alice) as http:
        task = _post(http, "/api/ai/generate", {"prompt": "a very long jam", "duration": 60}, 202)
        _post(http, f"/api/ai/tasks/{task['task_id']}/cancel", None, 200)
    final = stack.finish(alice, task["task_id"])
    assert final["status"] == "cancelled"
    assert final["files"] == {}


# --- audio out ------------------------------------------------------------------------


def test_download_streamed_ranged_and_presigned(stack: Stack, generation: Generation) -> None:
    audio = generation.audio
    url = audio["download_url"]
    with stack.client(generation.token) as http:
        r = http.get(url, params={"redirect": "false"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "audio/wav"
        assert r.headers["x-content-type-options"] == "nosniff"
        short = audio["blob_key"][:8]
        assert r.headers["content-disposition"] == f'attachment; filename="audio-{short}.wav"'
        named = http.get(url, params={"redirect": "false", "name": "Upbeat électro!"}, headers={"Range": "bytes=0-3"})
        assert named.headers["content-disposition"] == f'attachment; filename="upbeat-electro-{short}.wav"'
        assert audio["download_name"].endswith(f"-{short}.wav") and audio["download_name"] != f"audio-{short}.wav"
        again = http.get(
            url, params={"redirect": "false", "name": audio["download_name"]}, headers={"Range": "bytes=0-3"}
        )
        assert again.headers["content-disposition"] == f'attachment; filename="{audio["download_name"]}"'
        assert http.get("/api/audio/download/no-such-song.wav").status_code == 404
        assert r.headers["accept-ranges"] == "bytes"
        data = r.content
        assert hashlib.sha256(data).hexdigest() == audio["blob_key"]
        samples, rate = _decode(data)
        assert abs(samples.shape[0] / rate - SECONDS) < 0.1
        assert np.isfinite(samples).all() and np.abs(samples).max() > 0

        part = http.get(url, params={"redirect": "false"}, headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
        assert part.content == data[100:1100]
        tail = http.get(url, params={"redirect": "false"}, headers={"Range": "bytes=-500"})
        assert tail.status_code == 206 and tail.content == data[-500:]
        beyond = http.get(url, params={"redirect": "false"}, headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
        head = http.head(url, params={"redirect": "false"})
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data))

        redirect = http.get(url)
        assert redirect.status_code == 307
        presigned = redirect.headers["location"]
    direct = httpx.get(presigned, timeout=30)  # the client reads the object store directly, no token
    assert direct.status_code == 200 and direct.content == data
    assert direct.headers["content-type"] == "audio/wav"


def test_outputs_are_the_owners_when_the_job_ends_with_no_read_of_the_task(stack: Stack) -> None:
    """The worker that completes a job registers its outputs with vcs: no task, SSE or status read needed."""
    from beatflow.v1 import jobs_pb2, jobs_pb2_grpc, vcs_pb2, vcs_pb2_grpc

    owner, token = stack.signup("owner")
    other, _ = stack.signup("other")
    with stack.client(token) as http:
        task = _post(http, "/api/ai/generate", {"prompt": "short hats", "duration": 1.0, "seed": 3}, 202)
    # Follow the job on the backend itself, never through the gateway's task views.
    with grpc.insecure_channel(stack.addrs["generator"]) as channel:
        jobs = jobs_pb2_grpc.JobsStub(channel)
        for event in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=task["task_id"]), timeout=180):
            if event.state in (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_DEAD):
                break
        job = jobs.GetJob(jobs_pb2.GetJobRequest(job_id=task["task_id"]), timeout=30)
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.error
    keys = sorted(set(job.result_blobs.values()))
    assert keys
    with grpc.insecure_channel(stack.addrs["vcs"]) as channel:
        vcs = vcs_pb2_grpc.VcsStub(channel)
        for key in keys:
            assert vcs.CanReadBlob(vcs_pb2.CanReadBlobRequest(actor=owner, blob_key=key), timeout=30).allowed, key
            assert not vcs.CanReadBlob(vcs_pb2.CanReadBlobRequest(actor=other, blob_key=key), timeout=30).allowed
    with stack.client(token) as http:
        assert hashlib.sha256(_download(http, f"/api/audio/download/{keys[0]}")).hexdigest() == keys[0]


def test_analyze_generated_audio(stack: Stack, generation: Generation) -> None:
    with stack.client(generation.token) as http:
        out = _post(http, "/api/ai/analyze-audio", {"audio_blob": generation.audio["filename"]}, 200)
    analysis = out["analysis"]
    assert abs(analysis["duration_s"] - SECONDS) < 0.1
    assert analysis["key_mode"] in {"major", "minor"}
    assert analysis["bpm"] >= 0 and analysis["peak_dbfs"] <= 0.01


def test_uploads_judged_by_content_with_limits(stack: Stack, alice: str) -> None:
    wav = tone_wav(1.0)
    flac = io.BytesIO()
    sf.write(flac, np.zeros((8000, 1), np.float32) + 0.1, 8000, format="FLAC")
    with stack.client(alice) as http:
        # A WAV sent as "song.mp3" with an MP3 type is stored as what it is.
        r = http.post("/api/audio/upload", files={"file": ("song.mp3", wav, "audio/mpeg")})
        assert r.status_code == 201, r.text
        up = r.json()
        assert up["content_type"] == "audio/wav" and up["filename"].endswith(".wav")
        assert up["blob_key"] == hashlib.sha256(wav).hexdigest() and up["duration_s"] == pytest.approx(1.0)
        # The same bytes as a raw body are the same blob.
        raw = http.post("/api/audio/upload", content=wav, headers={"Content-Type": "application/octet-stream"})
        assert raw.status_code == 201 and raw.json()["blob_key"] == up["blob_key"]
        f = http.post("/api/audio/upload", content=flac.getvalue()).json()
        assert f["content_type"] == "audio/flac" and f["duration_s"] == pytest.approx(1.0)
        assert _download(http, f["download_url"]) == flac.getvalue()
        for name, payload in [("evil.wav", b"<html><script>alert(1)</script></html>"), ("x.wav", b"\x00" * 4096)]:
            r = http.post("/api/audio/upload", files={"file": (name, payload, "audio/wav")})
            assert r.status_code == 415, r.text
        # Longer than the stack's duration limit (60 s), refused from the header alone.
        long_wav = tone_wav(61.0, rate=8000, channels=1)
        r = http.post("/api/audio/upload", content=long_wav)
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        # Larger than the stack's size limit (4 MB), refused while streaming.
        big = tone_wav(50.0, rate=48000, channels=1)
        assert len(big) > 4_000_000
        r = http.post("/api/audio/upload", files={"file": ("big.wav", big, "audio/wav")})
        assert r.status_code == 413


def test_hum_to_beat(stack: Stack, alice: str) -> None:
    rate = 16000
    t = np.arange(int(3.0 * rate)) / rate
    melody = 0.4 * np.sin(2 * np.pi * np.cumsum(np.where(t < 1.5, 220.0, 330.0)) / rate)
    buf = io.BytesIO()
    sf.write(buf, melody.astype(np.float32), rate, format="WAV")
    hum = stack.upload(alice, buf.getvalue(), "hum.wav")
    with stack.client(alice) as http:
        task = _post(
            http,
            "/api/ai/hum-to-beat",
            {"melody_blob": hum["blob_key"], "prompt": "lofi", "duration": 1.5, "seed": 3},
            202,
        )
    final = stack.finish(alice, task["task_id"])
    assert final["status"] == "succeeded", final
    with stack.client(alice) as http:
        samples, rate_out = _decode(_download(http, final["files"]["audio"]["download_url"]))
    assert abs(samples.shape[0] / rate_out - 1.5) < 0.1


# --- version control --------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(stack: Stack, alice: str) -> str:
    with stack.client(alice) as http:
        created = _post(
            http, "/api/repositories/create", {"name": "first-track", "description": "demo", "visibility": "private"}
        )
        assert created["role"] == "owner" and created["default_branch"] == "main"
        assert _get(http, f"/api/repositories/{created['id']}") == created
        return str(created["id"])


@pytest.fixture(scope="module")
def separation(stack: Stack, generation: Generation) -> dict[str, Any]:
    with stack.client(generation.token) as http:
        task = _post(http, "/api/ai/separate-stems", {"audio_blob": generation.audio["blob_key"], "model": "tiny"}, 202)
    final = stack.finish(generation.token, task["task_id"])
    assert final["status"] == "succeeded", final
    return final


def _stems(commit: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["blob_key"] for s in commit["stems"]}


def _head(http: httpx.Client, repo: str, branch: str) -> str:
    refs = _get(http, f"/api/repositories/{repo}/branches")["refs"]
    return next(r["commit_id"] for r in refs if r["name"] == branch)


class _CallCounter(grpc.aio.UnaryUnaryClientInterceptor):
    """Records the method of every unary gRPC call the gateway makes."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method
        self.methods.append(method.decode() if isinstance(method, bytes) else method)
        return await continuation(details, request)


async def test_a_task_commit_is_at_most_three_backend_calls(
    stack: Stack, alice: str, separation: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit route translates: vcs resolves the head and describes the outputs (registered at completion)."""
    for name, value in stack.env.items():
        if name.startswith("BEATFLOW_"):
            monkeypatch.setenv(name, value)
    settings = GatewaySettings()
    app = create_app(settings, store=stack.store())
    counter = _CallCounter()
    async with app.router.lifespan_context(app):
        await app.state.gateway.backends.close()
        app.state.gateway.backends = Backends(settings, interceptors=[counter])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {alice}"},
        ) as http:
            r = await http.post("/api/repositories/create", json={"name": "counted-" + uuid.uuid4().hex[:8]})
            assert r.status_code == 201, r.text
            repo_id = r.json()["id"]
            counter.methods.clear()
            r = await http.post(
                f"/api/vcs/commit/{repo_id}", json={"message": "stems", "from_task": separation["task_id"], "bpm": 90}
            )
            assert r.status_code == 201, r.text
    commit = r.json()
    assert len(commit["stems"]) == len(separation["files"]) >= 4
    assert all(s["size_bytes"] > 0 and s["duration_s"] > 0 for s in commit["stems"]), commit["stems"]
    assert commit["metadata"]["duration_s"] == max(s["duration_s"] for s in commit["stems"])
    assert len(counter.methods) <= 3, counter.methods
    assert counter.methods == ["/beatflow.v1.Jobs/GetJob", "/beatflow.v1.Vcs/CreateCommit"], counter.methods
    assert counter.methods[-1] == "/beatflow.v1.Vcs/CreateCommit", counter.methods


def test_new_branch_starts_from_the_default_head_and_orphans_are_explicit(stack: Stack, alice: str) -> None:
    take = stack.upload(alice, tone_wav(1.0, freq=330.0))["blob_key"]
    other = stack.upload(alice, tone_wav(1.0, freq=440.0))["blob_key"]
    with stack.client(alice) as http:
        repo_id = _post(http, "/api/repositories/create", {"name": "branching-" + uuid.uuid4().hex[:8]})["id"]
        root = _post(
            http, f"/api/vcs/commit/{repo_id}", {"message": "one", "stems": [{"name": "mix", "blob_key": take}]}
        )
        assert root["parent_ids"] == []  # the repository's first commit
        assert root["stems"][0]["duration_s"] > 0.9 and root["metadata"]["duration_s"] > 0.9
        # Committing to a branch that does not exist starts it at the default branch's head.
        side = _post(
            http,
            f"/api/vcs/commit/{repo_id}",
            {
                "message": "drums",
                "branch": "side",
                "stems": [{"name": "drums", "blob_key": other}],
                "inherit_stems": True,
            },
        )
        assert side["parent_ids"] == [root["id"]] and _stems(side) == {"mix": take, "drums": other}
        diff = _get(http, f"/api/vcs/diff/{repo_id}", params={"base": "main", "head": "side"})
        assert {s["name"]: s["change"] for s in diff["stems"]} == {"mix": "unchanged", "drums": "added"}
        # ... or at the commit named.
        named = _post(
            http,
            f"/api/vcs/commit/{repo_id}",
            {
                "message": "from side",
                "branch": "side2",
                "parent_commit_id": side["id"],
                "stems": [{"name": "pad", "blob_key": take}],
            },
        )
        assert named["parent_ids"] == [side["id"]]
        # An unrelated history only when asked for.
        orphan = _post(
            http,
            f"/api/vcs/commit/{repo_id}",
            {"message": "fresh", "branch": "fresh", "orphan": True, "stems": [{"name": "mix", "blob_key": other}]},
        )
        assert orphan["parent_ids"] == []
        again = http.post(
            f"/api/vcs/commit/{repo_id}",
            json={"message": "x", "branch": "main", "orphan": True, "stems": [{"name": "mix", "blob_key": other}]},
        )
        assert again.status_code == 409 and "exists" in again.json()["detail"], again.text
        # The seed's literal body: no stems, no task -> 422 naming what is missing.
        empty = http.post(
            f"/api/vcs/commit/{repo_id}", json={"message": "Initial", "bpm": 120, "parent_commit_id": None}
        )
        assert empty.status_code == 422, empty.text
        assert "nothing to commit" in empty.text and "from_task" in empty.text and "stems" in empty.text
        # Someone else's audio cannot be committed by key.
        _bob, bob_token = stack.signup("bob")
        bobs = stack.upload(bob_token, tone_wav(1.0, freq=550.0))["blob_key"]
        stolen = http.post(
            f"/api/vcs/commit/{repo_id}", json={"message": "x", "stems": [{"name": "mix", "blob_key": bobs}]}
        )
        assert stolen.status_code == 404, stolen.text
        assert _head(http, repo_id, "main") == root["id"]


def test_version_control_workflow(
    stack: Stack, alice: str, generation: Generation, separation: dict[str, Any], repo: str
) -> None:
    stem_files = separation["files"]
    assert set(stem_files) >= {"drums", "bass", "vocals", "other"}
    with stack.client(alice) as http:
        mix, mix_rate = _decode(_download(http, generation.audio["download_url"]))
        decoded = {name: _decode(_download(http, f["download_url"])) for name, f in stem_files.items()}
        for name, (audio, rate) in decoded.items():
            assert abs(audio.shape[0] / rate - mix.shape[0] / mix_rate) < 0.05, name

        # Commit the generation, then its stems on top (the generation record travels along).
        first = _post(
            http,
            f"/api/vcs/commit/{repo}",
            {"message": "Initial generation", "from_task": generation.task_id, "bpm": 128},
        )
        assert first["parent_ids"] == []
        assert _stems(first) == {"mix": generation.audio["blob_key"]}
        assert first["metadata"]["bpm"] == 128 and first["metadata"]["generation"] is not None
        (conformed,) = first["metadata"]["generation"]["conform"]  # on by default: the request gave a bpm
        assert conformed["requested"] == {"bpm": 128.0, "key": None, "loop": False}
        assert abs(first["metadata"]["duration_s"] - SECONDS) < 0.1
        stems_commit = _post(
            http,
            f"/api/vcs/commit/{repo}",
            {
                "message": "Split into stems",
                "from_task": separation["task_id"],
                "inherit_stems": True,
                "parent_commit_id": first["id"],
            },
        )
        assert stems_commit["parent_ids"] == [first["id"]]
        assert stems_commit["metadata"] == first["metadata"]  # bpm and generation record carried over
        expected = {name: f["blob_key"] for name, f in stem_files.items()} | {"mix": generation.audio["blob_key"]}
        assert _stems(stems_commit) == expected
        assert _get(http, f"/api/vcs/commit/{stems_commit['id']}") == stems_commit

        # A stale parent is refused (compare-and-swap on the branch head).
        stale = http.post(
            f"/api/vcs/commit/{repo}", json={"message": "late", "parent_commit_id": first["id"], "inherit_stems": True}
        )
        assert stale.status_code == 409, stale.text

        # Change the drums on a branch.
        _post(http, f"/api/repositories/{repo}/branches", {"name": "remix", "from_ref": "main"})
        quiet_drums = stack.upload(alice, _scaled_wav(_download(http, stem_files["drums"]["download_url"]), 0.5))
        remix = _post(
            http,
            f"/api/vcs/commit/{repo}",
            {
                "message": "Softer drums",
                "branch": "remix",
                "stems": [{"name": "drums", "blob_key": quiet_drums["blob_key"]}],
                "inherit_stems": True,
            },
        )
        assert _stems(remix) == expected | {"drums": quiet_drums["blob_key"]}

        diff = _get(http, f"/api/vcs/diff/{repo}", params={"base": "main", "head": "remix"})
        changes = {s["name"]: s for s in diff["stems"]}
        assert changes["drums"]["change"] == "changed"
        assert changes["drums"]["base_blob"] == stem_files["drums"]["blob_key"]
        assert changes["drums"]["head_blob"] == quiet_drums["blob_key"]
        assert all(c["change"] == "unchanged" for n, c in changes.items() if n != "drums")

        # Meanwhile main changes the bass: merging remix is a real (non fast-forward) merge.
        loud_bass = stack.upload(alice, _scaled_wav(_download(http, stem_files["bass"]["download_url"]), 1.5))
        bass_commit = _post(
            http,
            f"/api/vcs/commit/{repo}",
            {
                "message": "Louder bass",
                "stems": [{"name": "bass", "blob_key": loud_bass["blob_key"]}],
                "inherit_stems": True,
            },
        )
        bases = _get(http, f"/api/vcs/merge-base/{repo}", params={"a": "main", "b": "remix"})["merge_bases"]
        assert bases == [stems_commit["id"]]
        merged = _post(http, f"/api/vcs/merge/{repo}", {"from_ref": "remix", "message": "Merge remix"}, 200)
        assert merged["merged"] and not merged["fast_forward"] and merged["conflicts"] == []
        merge_commit = merged["commit"]
        assert sorted(merge_commit["parent_ids"]) == sorted([bass_commit["id"], remix["id"]])
        assert _stems(merge_commit) == expected | {"drums": quiet_drums["blob_key"], "bass": loud_bass["blob_key"]}
        assert _get(http, f"/api/vcs/checkout/{repo}", params={"ref": "main"})["id"] == merge_commit["id"]

        # Both sides change the vocals: the merge reports the conflict, then a resolution settles it.
        _post(http, f"/api/repositories/{repo}/branches", {"name": "alt"})
        alt_vocals = stack.upload(alice, tone_wav(SECONDS, freq=523.0))
        main_vocals = stack.upload(alice, tone_wav(SECONDS, freq=392.0))
        alt = _post(
            http,
            f"/api/vcs/commit/{repo}",
            {
                "message": "Alt vocals",
                "branch": "alt",
                "stems": [{"name": "vocals", "blob_key": alt_vocals["blob_key"]}],
                "inherit_stems": True,
            },
        )
        _post(
            http,
            f"/api/vcs/commit/{repo}",
            {
                "message": "Main vocals",
                "stems": [{"name": "vocals", "blob_key": main_vocals["blob_key"]}],
                "inherit_stems": True,
            },
        )
        conflict = http.post(f"/api/vcs/merge/{repo}", json={"from_ref": "alt"})
        assert conflict.status_code == 409, conflict.text
        reported = conflict.json()["conflicts"]
        assert reported == [
            {
                "name": "vocals",
                "base_blob": stem_files["vocals"]["blob_key"],
                "ours_blob": main_vocals["blob_key"],
                "theirs_blob": alt_vocals["blob_key"],
            }
        ]
        dry = _post(http, f"/api/vcs/merge/{repo}", {"from_ref": "alt", "dry_run": True}, 200)
        assert not dry["merged"] and dry["conflicts"] == reported
        resolved = _post(
            http,
            f"/api/vcs/merge/{repo}",
            {"from_ref": "alt", "stem_strategies": {"vocals": "theirs"}, "message": "Take alt vocals"},
            200,
        )
        assert resolved["merged"]
        assert _stems(resolved["commit"])["vocals"] == alt_vocals["blob_key"]
        assert alt["id"] in resolved["commit"]["parent_ids"]

        # Revert the bass change: the bass goes back to the separated one, the rest stays.
        reverted = _post(
            http, f"/api/vcs/revert/{repo}", {"commit_id": bass_commit["id"], "message": "Undo louder bass"}
        )
        assert _stems(reverted)["bass"] == stem_files["bass"]["blob_key"]
        assert _stems(reverted)["drums"] == quiet_drums["blob_key"]
        assert _stems(reverted)["vocals"] == alt_vocals["blob_key"]

        blame = {e["stem"]: e["commit"]["id"] for e in _get(http, f"/api/vcs/blame/{repo}")["entries"]}
        assert blame["drums"] == remix["id"]
        assert blame["bass"] == reverted["id"]
        assert blame["mix"] == first["id"]

        tag = _post(
            http,
            f"/api/repositories/{repo}/tags",
            {"name": "v1", "target": resolved["commit"]["id"], "message": "first cut"},
        )
        assert tag["is_tag"] and tag["commit_id"] == resolved["commit"]["id"]

        # History: newest first, everything reachable from main; first-parent skips the branches' commits.
        history = _get(http, f"/api/vcs/history/{repo}")["commits"]
        ids = [c["id"] for c in history]
        assert ids[0] == reverted["id"] and ids[-1] == first["id"]
        assert {remix["id"], alt["id"], bass_commit["id"], merge_commit["id"]} <= set(ids)
        first_parent = [
            c["id"] for c in _get(http, f"/api/vcs/history/{repo}", params={"first_parent": True})["commits"]
        ]
        assert remix["id"] not in first_parent and alt["id"] not in first_parent and merge_commit["id"] in first_parent
        page = _get(http, f"/api/vcs/history/{repo}", params={"page_size": 2})
        assert [c["id"] for c in page["commits"]] == ids[:2] and page["next_page_token"]
        rest = _get(http, f"/api/vcs/history/{repo}", params={"page_size": 50, "page_token": page["next_page_token"]})
        assert [c["id"] for c in rest["commits"]] == ids[2:]

        graph = _get(http, f"/api/vcs/graph/{repo}")
        rows = {n["commit"]["id"]: n for n in graph["nodes"]}
        assert set(ids) <= set(rows) and graph["lanes"] >= 2
        assert sorted(n["row"] for n in graph["nodes"]) == list(range(len(graph["nodes"])))
        for edge in graph["edges"]:
            assert rows[edge["child"]]["row"] < rows[edge["parent"]]["row"]
        assert {e["parent"] for e in graph["edges"] if e["child"] == merge_commit["id"]} == {
            bass_commit["id"],
            remix["id"],
        }
        assert {r["name"] for r in graph["refs"]} >= {"main", "remix", "alt", "v1"}

    # Fork: Bob gets read access, forks, and the fork shares history and audio (nothing copied).
    bob_id, bob = stack.signup("bob")
    with stack.client(bob) as http:
        bob_name = _get(http, "/api/auth/me")["username"]
    with stack.client(alice) as http:
        r = http.put(f"/api/repositories/{repo}/collaborators/{bob_name}", json={"role": "read"})
        assert r.status_code == 200 and r.json()["role"] == "read"
        collaborators = {
            c["username"]: c["role"] for c in _get(http, f"/api/repositories/{repo}/collaborators")["collaborators"]
        }
        assert collaborators[bob_name] == "read"
    with stack.client(bob) as http:
        fork = _post(http, "/api/vcs/fork", {"repo_id": repo, "name": "my-remix"})
        assert fork["forked_from_id"] == repo and fork["owner_id"] == bob_id and fork["role"] == "owner"
        fork_history = [c["id"] for c in _get(http, f"/api/vcs/history/{fork['id']}")["commits"]]
        assert fork_history == ids
        head = _get(http, f"/api/vcs/checkout/{fork['id']}")
        assert _stems(head) == _stems(reverted)
        assert _download(http, head["stems"][0]["download_url"])[:4] in (b"RIFF", b"fLaC")
        bob_commit = _post(
            http,
            f"/api/vcs/commit/{fork['id']}",
            {"message": "Bob's take", "remove_stems": ["vocals"], "inherit_stems": True},
        )
        assert "vocals" not in _stems(bob_commit)
    with stack.client(alice) as http:
        assert _head(http, repo, "main") == reverted["id"]  # the original is untouched
