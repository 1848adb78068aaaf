"""Review over HTTP: comments at times of a stem, merge requests (also from a fork), activity, permissions.

A owns a private repository; B is made writer, C reader, D stays a stranger. Each role calls every
review endpoint: the stranger gets 404 without a word of A's data, the reader may comment and review
but not resolve others' threads or merge, the writer may merge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.stack_fixtures import Stack, tone_wav

SECRET = "hush-hush-take"


@dataclass
class Team:
    tokens: dict[str, str]
    names: dict[str, str]
    repo: str
    commit: str


@pytest.fixture(scope="module")
def team(stack: Stack) -> Iterator[Team]:
    tokens, names = {}, {}
    for role in ("owner", "writer", "reader", "stranger"):
        _, tokens[role] = stack.signup(f"rv{role}")
        with stack.client(tokens[role]) as http:
            names[role] = http.get("/api/auth/me").json()["username"]
    blob = stack.upload(tokens["owner"], tone_wav(2.0, freq=220))["blob_key"]
    with stack.client(tokens["owner"]) as http:
        repo = http.post("/api/repositories/create", json={"name": SECRET}).json()["id"]
        r = http.post(
            f"/api/vcs/commit/{repo}", json={"message": SECRET, "stems": [{"name": "lead", "blob_key": blob}]}
        )
        assert r.status_code == 201, r.text
        commit = r.json()["id"]
        for role, level in (("writer", "write"), ("reader", "read")):
            r = http.put(f"/api/repositories/{repo}/collaborators/{names[role]}", json={"role": level})
            assert r.status_code == 200, r.text
    yield Team(tokens, names, repo, commit)


def _comment(http: Any, team: Team, **extra: Any) -> Any:
    return http.post(f"/api/vcs/comments/{team.repo}", json={"commit_id": team.commit, "body": "hear this", **extra})


def test_comments_at_times_of_a_stem(stack: Stack, team: Team) -> None:
    with stack.client(team.tokens["reader"]) as http:
        r = _comment(http, team, stem="lead", start_s=0.5, end_s=1.25)
        assert r.status_code == 201, r.text
        thread = r.json()
        assert (thread["stem"], thread["start_s"], thread["end_s"]) == ("lead", 0.5, 1.25)
        assert _comment(http, team, stem="lead", start_s=1.5, end_s=2.5).status_code == 400  # past the 2 s stem
        assert _comment(http, team, stem="drums").status_code == 400  # no such stem
        assert _comment(http, team, start_s=0.0, end_s=1.0).status_code == 422  # a range needs a stem
        reply = http.post(f"/api/vcs/comments/{team.repo}", json={"parent_id": thread["id"], "body": "yes"})
        assert reply.status_code == 201 and reply.json()["parent_id"] == thread["id"]
        listed = http.get(f"/api/vcs/comments/{team.repo}", params={"commit": team.commit}).json()["comments"]
        assert [c["id"] for c in listed][:2] == [thread["id"], reply.json()["id"]]
    with stack.client(team.tokens["writer"]) as http:
        assert http.patch(f"/api/vcs/comments/{team.repo}/{thread['id']}", json={"body": "x"}).status_code == 403
        r = http.post(f"/api/vcs/comments/{team.repo}/{thread['id']}/resolve", json={"resolved": True})
        assert r.status_code == 200 and r.json()["resolved"]


def test_stranger_and_anonymous_see_nothing(stack: Stack, team: Team) -> None:
    with stack.client(team.tokens["owner"]) as http:
        c = _comment(http, team).json()
        r = http.post(f"/api/repositories/{team.repo}/branches", json={"name": "idea-s"})
        assert r.status_code == 201, r.text
        r = http.post(
            f"/api/vcs/commit/{team.repo}",
            json={"message": "idea", "branch": "idea-s", "stems": [{"name": "lead", "blob_key": "ab" * 32}]},
        )
    r_ = team.repo
    calls = [
        ("GET", f"/api/vcs/comments/{r_}?commit={team.commit}", {}),
        ("POST", f"/api/vcs/comments/{r_}", {"json": {"commit_id": team.commit, "body": "hi"}}),
        ("PATCH", f"/api/vcs/comments/{r_}/{c['id']}", {"json": {"body": "x"}}),
        ("DELETE", f"/api/vcs/comments/{r_}/{c['id']}", {}),
        ("POST", f"/api/vcs/comments/{r_}/{c['id']}/resolve", {"json": {"resolved": True}}),
        ("GET", f"/api/vcs/merge-requests/{r_}", {}),
        ("POST", f"/api/vcs/merge-requests/{r_}", {"json": {"source_branch": "idea-s", "title": "t"}}),
        ("GET", f"/api/vcs/merge-requests/{r_}/1", {}),
        ("POST", f"/api/vcs/merge-requests/{r_}/1/reviews", {"json": {"verdict": "approve"}}),
        ("POST", f"/api/vcs/merge-requests/{r_}/1/merge", {"json": {}}),
        ("GET", f"/api/vcs/activity/{r_}", {}),
    ]
    with stack.client(team.tokens["stranger"]) as http:
        for method, url, kwargs in calls:
            r = http.request(method, url, **kwargs)
            assert r.status_code == 404, f"{method} {url}: {r.status_code} {r.text[:200]}"
            assert SECRET not in r.text and "hear this" not in r.text
        news = http.get("/api/vcs/whats-new")
        assert news.status_code == 200 and r_ not in news.text
    with stack.client(None) as http:
        for method, url, kwargs in [*calls[:3], ("GET", "/api/vcs/whats-new", {})]:
            assert http.request(method, url, **kwargs).status_code == 401


def test_merge_request_lifecycle_and_feed(stack: Stack, team: Team) -> None:
    owner, writer, reader = (team.tokens[k] for k in ("owner", "writer", "reader"))
    with stack.client(owner) as http:
        assert http.post(f"/api/repositories/{team.repo}/branches", json={"name": "idea"}).status_code == 201
        head = http.get(f"/api/vcs/checkout/{team.repo}?ref=idea").json()["id"]
        blob = stack.upload(owner, tone_wav(2.0, freq=440))["blob_key"]
        r = http.post(
            f"/api/vcs/commit/{team.repo}",
            json={
                "message": "brighter",
                "branch": "idea",
                "parent_commit_id": head,
                "stems": [{"name": "lead", "blob_key": blob}],
            },
        )
        assert r.status_code == 201, r.text
    with stack.client(reader) as http:
        # the default branch into itself: a state of the repository (409), not a malformed request
        same = http.post(f"/api/vcs/merge-requests/{team.repo}", json={"source_branch": "main", "title": "itself"})
        assert same.status_code == 409 and "same branch" in same.text, same.text
        blank = http.post(f"/api/vcs/merge-requests/{team.repo}", json={"source_branch": "idea", "title": "  "})
        assert blank.status_code == 422, blank.text
        r = http.post(f"/api/vcs/merge-requests/{team.repo}", json={"source_branch": "idea", "title": "brighter lead"})
        assert r.status_code == 201, r.text
        mr = r.json()
        assert mr["state"] == "open" and [c["name"] for c in mr["evaluation"]["changes"]] == ["lead"]
        r = http.post(
            f"/api/vcs/comments/{team.repo}",
            json={"merge_request": str(mr["number"]), "body": "bright", "stem": "lead", "start_s": 0.1, "end_s": 0.2},
        )
        assert r.status_code == 201, r.text
        assert http.post(f"/api/vcs/merge-requests/{team.repo}/{mr['id']}/merge", json={}).status_code == 403
    with stack.client(writer) as http:
        r = http.post(f"/api/vcs/merge-requests/{team.repo}/{mr['number']}/reviews", json={"verdict": "approve"})
        assert r.status_code == 200 and r.json()["reviews"][0]["verdict"] == "approve"
        r = http.post(f"/api/vcs/merge-requests/{team.repo}/{mr['number']}/merge", json={})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["merged"] and out["request"]["state"] == "merged"
        assert f"Merge-Request: {mr['id']}" in out["merge"]["commit"]["message"]
        assert http.post(f"/api/vcs/merge-requests/{team.repo}/{mr['number']}/merge", json={}).status_code == 409
        feed = http.get(f"/api/vcs/activity/{team.repo}", params={"page_size": 3}).json()
        assert feed["events"][0]["kind"] == "merge_request_merged" and feed["next_page_token"]
        more = http.get(f"/api/vcs/activity/{team.repo}", params={"page_token": feed["next_page_token"]}).json()
        assert feed["events"][-1]["seq"] > more["events"][0]["seq"]
    with stack.client(reader) as http:
        news = http.get("/api/vcs/whats-new").json()["events"]
        assert any(e["kind"] == "merge_request_merged" and e["repo_id"] == team.repo for e in news)


def test_fork_to_upstream_over_http(stack: Stack, team: Team) -> None:
    owner, stranger = team.tokens["owner"], team.tokens["stranger"]
    blob = stack.upload(owner, tone_wav(1.0, freq=300))["blob_key"]
    with stack.client(owner) as http:
        up = http.post("/api/repositories/create", json={"name": "open-song", "visibility": "public"}).json()["id"]
        r = http.post(f"/api/vcs/commit/{up}", json={"message": "base", "stems": [{"name": "keys", "blob_key": blob}]})
        assert r.status_code == 201, r.text
    mine = stack.upload(stranger, tone_wav(1.0, freq=600))["blob_key"]
    with stack.client(stranger) as http:
        fork = http.post("/api/vcs/fork", json={"repo_id": up, "name": "my-song"}).json()["id"]
        head = http.get(f"/api/vcs/checkout/{fork}").json()["id"]
        r = http.post(
            f"/api/vcs/commit/{fork}",
            json={"message": "mine", "parent_commit_id": head, "stems": [{"name": "keys", "blob_key": mine}]},
        )
        assert r.status_code == 201, r.text
        r = http.post(
            f"/api/vcs/merge-requests/{up}", json={"source_repo_id": fork, "source_branch": "main", "title": "my keys"}
        )
        assert r.status_code == 201, r.text
        number = r.json()["number"]
        r = http.get(f"/api/vcs/merge-requests/{up}/{number}/audio-diff")
        assert r.status_code == 202, r.text
        assert [(c["name"], c["change"]) for c in r.json()["stems"]] == [("keys", "changed")]
        task_id = r.json()["task"]["task_id"]
    task = stack.finish(stranger, task_id)
    assert task["status"] == "succeeded" and task["result"]["stems"]["keys"]["status"] == "changed", task
    with stack.client(owner) as http:
        r = http.post(f"/api/vcs/merge-requests/{up}/{number}/merge", json={})
        assert r.status_code == 200 and r.json()["merged"], r.text
        keys = {s["name"]: s["blob_key"] for s in http.get(f"/api/vcs/checkout/{up}").json()["stems"]}
        assert keys == {"keys": mine}


def test_review_routes_are_in_the_openapi_schema(stack: Stack) -> None:
    with stack.client(None) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for p in (
        "/api/vcs/comments/{repo_id}",
        "/api/vcs/comments/{repo_id}/{comment_id}",
        "/api/vcs/comments/{repo_id}/{comment_id}/resolve",
        "/api/vcs/merge-requests/{repo_id}",
        "/api/vcs/merge-requests/{repo_id}/{merge_request}",
        "/api/vcs/merge-requests/{repo_id}/{merge_request}/reviews",
        "/api/vcs/merge-requests/{repo_id}/{merge_request}/merge",
        "/api/vcs/activity/{repo_id}",
        "/api/vcs/whats-new",
        "/api/vcs/audio-diff/{repo_id}",
        "/api/vcs/merge-requests/{repo_id}/{merge_request}/audio-diff",
    ):
        assert p in paths, p
    assert "409" in paths["/api/vcs/merge-requests/{repo_id}/{merge_request}/merge"]["post"]["responses"]


def test_audio_diff_of_two_commits_over_http(stack: Stack, team: Team) -> None:
    import io

    import numpy as np
    import soundfile as sf

    rate = 16000
    t = np.arange(6 * rate) / rate
    base = 0.3 * np.sin(2 * np.pi * 220 * t)
    changed = base.copy()
    changed[2 * rate : 4 * rate] = 0.3 * np.sin(2 * np.pi * 1500 * t[: 2 * rate])

    def wav(x: np.ndarray) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, np.stack([x, x], axis=1).astype(np.float32), rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    owner = team.tokens["owner"]
    a = stack.upload(owner, wav(base))["blob_key"]
    b = stack.upload(owner, wav(changed))["blob_key"]
    keep = stack.upload(owner, tone_wav(6.0, freq=110))["blob_key"]
    with stack.client(owner) as http:
        repo = http.post("/api/repositories/create", json={"name": "diffing"}).json()["id"]
        stems = [{"name": "lead", "blob_key": a}, {"name": "bass", "blob_key": keep}]
        first = http.post(f"/api/vcs/commit/{repo}", json={"message": "1", "stems": stems}).json()["id"]
        r = http.post(
            f"/api/vcs/commit/{repo}",
            json={
                "message": "2",
                "parent_commit_id": first,
                "stems": [{"name": "lead", "blob_key": b}],
                "inherit_stems": True,
            },
        )
        assert r.status_code == 201, r.text
        r = http.get(f"/api/vcs/audio-diff/{repo}", params={"base": first, "head": "main"})
        assert r.status_code == 202, r.text
        out = r.json()
        assert {s["name"]: s["change"] for s in out["stems"]} == {"bass": "unchanged", "lead": "changed"}
        again = http.get(f"/api/vcs/audio-diff/{repo}", params={"base": first, "head": "main"}).json()
        assert again["task"]["task_id"] == out["task"]["task_id"]  # the same pair: the same task
    task = stack.finish(owner, out["task"]["task_id"])
    assert task["status"] == "succeeded", task
    result = task["result"]["stems"]
    assert result["bass"]["status"] == "unchanged" and result["bass"]["decoded"] is False
    (region,) = result["lead"]["regions"]
    assert abs(region["start_s"] - 2.0) <= 0.1 and abs(region["end_s"] - 4.0) <= 0.1
    with stack.client(team.tokens["stranger"]) as http:
        assert http.get(f"/api/vcs/audio-diff/{repo}", params={"base": first, "head": "main"}).status_code == 404
