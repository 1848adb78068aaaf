"""The task status fast path answers exactly as the FastAPI route does, and counts the same metrics.

Each request is sent twice with the same scope: to the fast path
(``app.task_status``), which must take it, and to FastAPI's own stack
(``FastAPI.__call__``, the route ``GET /api/ai/tasks/{task_id}``); status,
headers (in order) and body must be equal. A real Redis, stopped for the 503 cases.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from beatflow.common import localservers
from beatflow.common.blobstore import LocalBlobStore
from beatflow.common.jobs import JobQueue
from beatflow.gateway.app import GatewayApp, create_app
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.config import GatewaySettings

TEMPLATE = "/api/ai/tasks/{task_id}"


@dataclass
class Env:
    app: GatewayApp
    jobs: JobQueue
    redis: localservers.LocalServer
    token: str  # owner-1's
    other_token: str  # owner-2's
    task_id: str  # owner-1's task
    other_task_id: str  # owner-2's task


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    redis = localservers.start_redis(tmp_path / "redis", persist=False)
    dead = f"127.0.0.1:{localservers.free_port()}"  # status reads never call a backend
    settings = GatewaySettings(
        token_secret=secrets.token_hex(32),
        vcs_addr=dead,
        generator_addr=dead,
        separator_addr=dead,
        redis_url=redis.url,
        token_check_cache_s=60.0,  # a version read once is trusted through the Redis-down cases
    )
    try:
        app = create_app(settings, store=LocalBlobStore(tmp_path / "blobs"))
        assert isinstance(app, GatewayApp) and app.task_status is not None
        async with app.router.lifespan_context(app):
            state = app.state.gateway
            jobs = state.backends.jobs
            assert jobs is not None
            mine = await jobs.submit("generate", {"prompt": "mine", "duration": 2.0}, owner="owner-1")
            theirs = await jobs.submit("generate", {"prompt": "theirs", "duration": 2.0}, owner="owner-2")
            yield Env(
                app,
                jobs,
                redis,
                state.signer.issue(Principal("owner-1", "ada")),
                state.signer.issue(Principal("owner-2", "bob")),
                mine.id,
                theirs.id,
            )
    finally:
        redis.stop()


def _scope(path: str, headers: list[tuple[bytes, bytes]], method: str = "GET") -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it (header names in lower case)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"gateway"), *headers],
        "state": {},
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _count(status: int) -> float:
    labels = {"method": "GET", "route": TEMPLATE, "status": str(status)}
    return REGISTRY.get_sample_value("beatflow_http_requests_total", labels) or 0.0


async def _fast(app: GatewayApp, scope: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert app.task_status is not None
    taken = await app.task_status(scope, _receive, send)
    return taken, sent


async def _stack(app: GatewayApp, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await FastAPI.__call__(app, scope, _receive, send)  # the route, through FastAPI's whole stack
    return sent


def _answer(sent: list[dict[str, Any]]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    return start["status"], list(start["headers"]), b"".join(m.get("body", b"") for m in bodies)


async def _same_answer(app: GatewayApp, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """The fast path takes the request and answers as the route does; both are counted under the route."""
    status_before = None
    taken, fast_sent = await _fast(app, _scope(path, headers))
    assert taken, path
    fast = _answer(fast_sent)
    status_before = _count(fast[0])
    stack = _answer(await _stack(app, _scope(path, headers)))
    assert fast == stack
    assert _count(fast[0]) == status_before + 1  # the route's stack counted it under the same labels
    assert (b"x-content-type-options", b"nosniff") in fast[1]
    return fast[0], fast[2]


def _bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


async def test_same_answers_as_the_route(env: Env) -> None:
    path = f"/api/ai/tasks/{env.task_id}"
    before = _count(200)
    status, body = await _same_answer(env.app, path, _bearer(env.token))
    assert status == 200 and env.task_id.encode() in body
    assert _count(200) == before + 2  # the fast path's request and the route's

    # 401: no token, a malformed one, another scheme, a forged one
    forged = env.token[:-4] + ("AAAA" if not env.token.endswith("AAAA") else "BBBB")
    for headers in ([], _bearer("not-a-token"), [(b"authorization", f"Basic {env.token}".encode())], _bearer(forged)):
        status, body = await _same_answer(env.app, path, headers)
        assert status == 401, body
    # 404: an unknown task, and another user's
    for task_id in ("no-such-task", env.other_task_id):
        status, body = await _same_answer(env.app, f"/api/ai/tasks/{task_id}", _bearer(env.token))
        assert status == 404, body
    # 401 after a sign-out
    await env.app.state.gateway.revocations.revoke_all("owner-1")
    status, body = await _same_answer(env.app, path, _bearer(env.token))
    assert status == 401 and b"revoked" in body


async def test_same_answers_with_redis_down(env: Env) -> None:
    # owner-2's token version is read (and trusted for a minute) before Redis goes away
    await _same_answer(env.app, f"/api/ai/tasks/{env.other_task_id}", _bearer(env.other_token))
    env.redis.stop()
    # the job store is unreachable: 503 with Retry-After
    status, body = await _same_answer(env.app, f"/api/ai/tasks/{env.other_task_id}", _bearer(env.other_token))
    assert status == 503 and b"Redis" in body, body
    # the token version cannot be read: 503 as well
    status, body = await _same_answer(env.app, f"/api/ai/tasks/{env.task_id}", _bearer(env.token))
    assert status == 503, body


async def test_steps_aside_for_what_the_route_stack_must_judge(env: Env) -> None:
    auth = _bearer(env.token)
    path = f"/api/ai/tasks/{env.task_id}"
    for scope in (
        _scope(path, auth, method="HEAD"),
        _scope(path, auth, method="POST"),
        _scope(path + "/", auth),
        _scope(f"{path}/cancel", auth),
        _scope("/api/ai/tasks/" + "x" * 129, auth),  # the path parameter's limits: 422
        _scope("/api/ai/tasks/bad id", auth),
        _scope(path, [*auth, (b"content-length", b"5000000")]),  # a body: the body limit's 413
        _scope(path, [*auth, (b"transfer-encoding", b"chunked")]),
        {"type": "websocket", "path": path, "headers": auth},
    ):
        taken, sent = await _fast(env.app, scope)
        assert not taken and not sent, scope["path"]
    # what it stepped aside for, the route's stack answers as before
    status, _headers, _body = _answer(await _stack(env.app, _scope("/api/ai/tasks/" + "x" * 129, auth)))
    assert status == 422
    status, _headers, body = _answer(await _stack(env.app, _scope(path, [*auth, (b"content-length", b"5000000")])))
    assert status == 413, body


async def test_cross_origin_requests_go_through_cors(tmp_path: Path, redis_url: str) -> None:
    settings = GatewaySettings(
        token_secret=secrets.token_hex(32), redis_url=redis_url, cors_origins=["https://studio.example"]
    )
    app = create_app(settings, store=LocalBlobStore(tmp_path / "blobs"))
    assert isinstance(app, GatewayApp) and app.task_status is not None
    async with app.router.lifespan_context(app):
        token = app.state.gateway.signer.issue(Principal("owner-1", "ada"))
        cross = _scope("/api/ai/tasks/t1", [*_bearer(token), (b"origin", b"https://studio.example")])
        taken, _sent = await _fast(app, cross)
        assert not taken
        status, headers, _body = _answer(await _stack(app, cross))
        assert status == 404 and (b"access-control-allow-origin", b"https://studio.example") in headers
        # without an Origin, CORS adds nothing: the fast path answers
        taken, sent = await _fast(app, _scope("/api/ai/tasks/t1", _bearer(token)))
        assert taken and _answer(sent)[0] == 404
