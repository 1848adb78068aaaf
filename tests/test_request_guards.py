"""Guards on the HTTP API over the whole stack: sign-in throttling and Idempotency-Key binding."""

from __future__ import annotations

import uuid

from tests.stack_fixtures import Stack


def test_wrong_passwords_lock_the_account_with_retry_after(stack: Stack) -> None:
    username = f"guarded{uuid.uuid4().hex[:8]}"
    password = "correct horse battery"
    with stack.client() as http:
        assert http.post("/api/auth/signup", json={"username": username, "password": password}).status_code == 201
        answers = [
            http.post("/api/auth/signin", json={"username": username, "password": f"wrong guess number {i}"})
            for i in range(6)
        ]
        assert [r.status_code for r in answers] == [401] * 5 + [429]
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 300
        assert "too many failed sign-ins" in answers[-1].json()["detail"]
        # locked: even the right password waits for the window to end
        right = http.post("/api/auth/signin", json={"username": username, "password": password})
        assert right.status_code == 429 and "retry-after" in right.headers
        # other accounts from the same address still sign in
        other = f"other{uuid.uuid4().hex[:8]}"
        assert http.post("/api/auth/signup", json={"username": other, "password": password}).status_code == 201
        assert http.post("/api/auth/signin", json={"username": other, "password": password}).status_code == 200


def test_idempotency_key_reused_with_another_body_is_a_conflict(stack: Stack) -> None:
    _uid, token = stack.signup("idem")
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    body = {"prompt": "lofi beat", "duration": 1}  # no seed: the service draws one, the key still matches
    with stack.client(token) as http:
        first = http.post("/api/ai/generate", json=body, headers=key)
        assert first.status_code == 202, first.text
        again = http.post("/api/ai/generate", json=body, headers=key)
        assert again.status_code == 202 and again.json()["task_id"] == first.json()["task_id"]
        other = http.post("/api/ai/generate", json={**body, "prompt": "techno"}, headers=key)
        assert other.status_code == 409, other.text
        assert first.json()["task_id"] in other.json()["detail"] and "different request" in other.json()["detail"]
        stack.finish(token, first.json()["task_id"])
