"""Every object endpoint refuses another user's repository, commit, task and audio (404/403, never data).

User A owns a private repository (a commit, a branch, a tag), an uploaded
blob and a finished separation task. User B, signed in with a valid token of
their own, calls each endpoint on A's objects and must be refused without
seeing any of A's data; A, as a control, reads the same URLs successfully.
Then A grants B read access: B can read but still not write.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.stack_fixtures import Stack, tone_wav

REFUSED = {403, 404}
SECRET_WORDS = ("secret-beats", "a private message", "hidden-branch")


@dataclass
class World:
    a_token: str
    b_token: str
    b_name: str
    repo: str
    commit: str
    blob: str
    task: str
    b_repo: str


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    _a_id, a_token = stack.signup("alice")
    _b_id, b_token = stack.signup("bob")
    with stack.client(b_token) as http:
        b_name = http.get("/api/auth/me").json()["username"]
        b_repo = http.post("/api/repositories/create", json={"name": "bobs-own"}).json()["id"]
    blob = stack.upload(a_token, tone_wav(1.5, freq=330))["blob_key"]
    with stack.client(a_token) as http:
        r = http.post("/api/repositories/create", json={"name": "secret-beats", "description": "a private message"})
        assert r.status_code == 201, r.text
        repo = r.json()["id"]
        r = http.post(
            f"/api/vcs/commit/{repo}",
            json={"message": "a private message", "stems": [{"name": "lead", "blob_key": blob}]},
        )
        assert r.status_code == 201, r.text
        commit = r.json()["id"]
        assert http.post(f"/api/repositories/{repo}/branches", json={"name": "hidden-branch"}).status_code == 201
        assert http.post(f"/api/repositories/{repo}/tags", json={"name": "v1", "target": commit}).status_code == 201
        r = http.post("/api/ai/separate-stems", json={"audio_blob": blob, "model": "tiny"})
        assert r.status_code == 202, r.text
        task = r.json()["task_id"]
    assert stack.finish(a_token, task)["status"] == "succeeded"
    yield World(a_token, b_token, b_name, repo, commit, blob, task, b_repo)


def _read_requests(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, kwargs) for every read endpoint on A's objects."""
    r, c = w.repo, w.commit
    return [
        ("GET", f"/api/repositories/{r}", {}),
        ("GET", f"/api/repositories/{r}/collaborators", {}),
        ("GET", f"/api/repositories/{r}/branches", {}),
        ("GET", f"/api/repositories/{r}/tags", {}),
        ("GET", f"/api/vcs/commit/{c}", {}),
        ("GET", f"/api/vcs/commit/{c}?repo_id={r}", {}),
        ("GET", f"/api/vcs/history/{r}", {}),
        ("GET", f"/api/vcs/graph/{r}", {}),
        ("GET", f"/api/vcs/checkout/{r}?ref=main", {}),
        ("GET", f"/api/vcs/diff/{r}?base={c}&head=hidden-branch", {}),
        ("GET", f"/api/vcs/merge-base/{r}?a=main&b=hidden-branch", {}),
        ("GET", f"/api/vcs/blame/{r}", {}),
        ("GET", f"/api/ai/status/{w.task}", {}),
        ("GET", f"/api/ai/tasks/{w.task}", {}),
        ("GET", f"/api/ai/tasks/{w.task}/events", {}),
        ("GET", f"/api/audio/download/{w.blob}.wav?redirect=false", {}),
        ("GET", f"/api/audio/download/{w.blob}.wav", {}),
        ("HEAD", f"/api/audio/download/{w.blob}.wav?redirect=false", {}),
        ("POST", "/api/ai/analyze-audio", {"json": {"audio_blob": w.blob}}),
    ]


def _write_requests(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    r, c = w.repo, w.commit
    return [
        ("DELETE", f"/api/repositories/{r}", {}),
        ("PUT", f"/api/repositories/{r}/collaborators/{w.b_name}", {"json": {"role": "write"}}),
        ("DELETE", f"/api/repositories/{r}/collaborators/{w.b_name}", {}),
        ("POST", f"/api/repositories/{r}/branches", {"json": {"name": "intruder"}}),
        ("PATCH", f"/api/repositories/{r}/branches/hidden-branch", {"json": {"new_name": "renamed"}}),
        ("DELETE", f"/api/repositories/{r}/branches/hidden-branch", {}),
        ("POST", f"/api/repositories/{r}/tags", {"json": {"name": "v2", "target": c}}),
        ("DELETE", f"/api/repositories/{r}/tags/v1", {}),
        ("POST", f"/api/vcs/commit/{r}", {"json": {"message": "x", "stems": [{"name": "lead", "blob_key": w.blob}]}}),
        ("POST", f"/api/vcs/commit/{r}", {"json": {"message": "x", "branch": "hidden-branch", "inherit_stems": True}}),
        ("POST", f"/api/vcs/merge/{r}", {"json": {"from_ref": "hidden-branch", "into_branch": "main"}}),
        ("POST", f"/api/vcs/revert/{r}", {"json": {"commit_id": c}}),
        ("POST", "/api/vcs/fork", {"json": {"repo_id": r, "name": "stolen"}}),
        ("POST", f"/api/ai/tasks/{w.task}/cancel", {}),
        # A's audio used as input of B's own work, or committed into B's own repository:
        ("POST", "/api/ai/separate-stems", {"json": {"audio_blob": w.blob, "model": "tiny"}}),
        ("POST", "/api/ai/generate", {"json": {"prompt": "x", "duration": 1, "melody_blob": w.blob}}),
        ("POST", "/api/ai/hum-to-beat", {"json": {"melody_blob": w.blob, "duration": 1}}),
        (
            "POST",
            f"/api/vcs/commit/{w.b_repo}",
            {"json": {"message": "x", "stems": [{"name": "s", "blob_key": w.blob}]}},
        ),
        ("POST", f"/api/vcs/commit/{w.b_repo}", {"json": {"message": "x", "from_task": w.task}}),
    ]


def _assert_no_leak(response: Any, w: World) -> None:
    text = response.text
    for word in SECRET_WORDS:
        assert word not in text, f"{response.request.method} {response.request.url} leaked {word!r}: {text}"


def test_owner_reads_every_url(stack: Stack, world: World) -> None:
    with stack.client(world.a_token) as http:
        for method, url, kwargs in _read_requests(world):
            r = http.request(method, url, **kwargs)
            assert r.status_code in (200, 206, 307), f"{method} {url}: {r.status_code} {r.text[:300]}"


def test_other_user_is_refused_everywhere(stack: Stack, world: World) -> None:
    with stack.client(world.b_token) as http:
        for method, url, kwargs in _read_requests(world) + _write_requests(world):
            r = http.request(method, url, **kwargs)
            assert r.status_code in REFUSED, f"{method} {url}: {r.status_code} {r.text[:300]}"
            _assert_no_leak(r, world)
    # Nothing B tried changed A's repository.
    with stack.client(world.a_token) as http:
        branches = {b["name"] for b in http.get(f"/api/repositories/{world.repo}/branches").json()["refs"]}
        assert branches == {"main", "hidden-branch"}
        assert http.get(f"/api/vcs/checkout/{world.repo}?ref=main").json()["id"] == world.commit
        assert http.get(f"/api/ai/status/{world.task}").json()["state"] == "succeeded"


def test_task_status_is_the_jobs_services_answer(stack: Stack, world: World) -> None:
    """The gateway reads a task from the job store itself: the same body the Jobs service's reply gives."""
    import grpc

    from beatflow.gateway import convert
    from beatflow.v1 import jobs_pb2, jobs_pb2_grpc

    with grpc.insecure_channel(stack.addrs["generator"]) as channel:
        job = jobs_pb2_grpc.JobsStub(channel).GetJob(jobs_pb2.GetJobRequest(job_id=world.task), timeout=30)
    with stack.client(world.a_token) as http:
        r = http.get(f"/api/ai/tasks/{world.task}")
        assert r.status_code == 200, r.text
        assert r.json() == convert.task(job).model_dump(mode="json")
        assert r.json()["files"]  # a finished separation: its stems are there
        unknown = http.get(f"/api/ai/tasks/{world.task}x")
        assert (unknown.status_code, unknown.json()) == (404, {"detail": "task not found"})
    with stack.client(world.b_token) as http:
        stranger = http.get(f"/api/ai/tasks/{world.task}")
        assert (stranger.status_code, stranger.json()) == (404, {"detail": "task not found"})


def test_other_user_websocket_is_closed_without_events(stack: Stack, world: World) -> None:
    ws_url = stack.base_url.replace("http://", "ws://") + f"/ws/tasks/{world.task}"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {world.b_token}"}) as ws:
        first = ws.recv(timeout=30)
        assert '"error"' in first and "succeeded" not in first
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_owner_websocket_ignores_client_frames(stack: Stack, world: World) -> None:
    """Frames the client sends (text or binary) do not end the stream: the history and "done" still come."""
    ws_url = stack.base_url.replace("http://", "ws://") + f"/ws/tasks/{world.task}"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {world.a_token}"}) as ws:
        with contextlib.suppress(ConnectionClosed):  # a fast replay may already have closed the socket
            ws.send(b"\x00binary")
            ws.send("text")
        kinds = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                kinds.append(json.loads(ws.recv(timeout=30))["type"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000, closed.value
    assert kinds[-1] == "done" and "progress" in kinds, kinds


def test_unauthenticated_and_forged_tokens_get_401(stack: Stack, world: World) -> None:
    forged = world.a_token[:-4] + ("AAAA" if not world.a_token.endswith("AAAA") else "BBBB")
    for token in (None, forged, "not-a-token"):
        with stack.client(token) as http:
            for method, url, kwargs in [*_read_requests(world)[:6], ("GET", "/api/repositories", {})]:
                r = http.request(method, url, **kwargs)
                assert r.status_code == 401, f"{method} {url} with {token!r}: {r.status_code}"
                _assert_no_leak(r, world)


def test_read_collaborator_can_read_but_not_write(stack: Stack, world: World) -> None:
    with stack.client(world.a_token) as http:
        r = http.put(f"/api/repositories/{world.repo}/collaborators/{world.b_name}", json={"role": "read"})
        assert r.status_code == 200, r.text
    try:
        with stack.client(world.b_token) as http:
            repo = http.get(f"/api/repositories/{world.repo}")
            assert repo.status_code == 200 and repo.json()["role"] == "read"
            commit = http.get(f"/api/vcs/commit/{world.commit}").json()
            assert commit["message"] == "a private message"
            audio = http.get(f"/api/audio/download/{world.blob}.wav?redirect=false")
            assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
            # Reading the repository does not make A's task B's.
            assert http.get(f"/api/ai/status/{world.task}").status_code == 404
            r = http.post(f"/api/repositories/{world.repo}/branches", json={"name": "intruder"})
            assert r.status_code == 403, r.text
            r = http.post(
                f"/api/vcs/commit/{world.repo}",
                json={"message": "x", "stems": [{"name": "lead", "blob_key": world.blob}]},
            )
            assert r.status_code == 403, r.text
    finally:
        with stack.client(world.a_token) as http:
            assert http.delete(f"/api/repositories/{world.repo}/collaborators/{world.b_name}").status_code == 204
    with stack.client(world.b_token) as http:
        assert http.get(f"/api/repositories/{world.repo}").status_code in REFUSED
