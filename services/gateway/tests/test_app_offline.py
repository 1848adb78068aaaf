"""The app in-process with every backend down: clear 503s, never a 500; checks that need no backend still work."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from beatflow.common.blobstore import LocalBlobStore
from beatflow.common.localservers import free_port
from beatflow.gateway.app import create_app
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.config import GatewaySettings


@pytest.fixture
async def client(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings = GatewaySettings(
        token_secret=secrets.token_hex(32),
        vcs_addr=dead,
        generator_addr=dead,
        separator_addr=dead,
        rpc_timeout_s=5,
        redis_url=redis_url,  # the revocation store is up; the gRPC backends are not
    )
    app = create_app(settings, store=LocalBlobStore(tmp_path / "blobs"))
    async with app.router.lifespan_context(app):
        token = app.state.gateway.signer.issue(Principal("u1", "ada"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            yield http, token


async def test_health_reports_unreachable_backends(client: tuple[httpx.AsyncClient, str]) -> None:
    http, _token = client
    r = await http.get("/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "degraded",
        "backends": {"vcs": "UNREACHABLE", "generator": "UNREACHABLE", "separator": "UNREACHABLE"},
    }
    assert (await http.get("/health", params={"strict": "true"})).status_code == 503


async def test_backend_down_is_503_with_a_message(client: tuple[httpx.AsyncClient, str]) -> None:
    http, token = client
    auth = {"Authorization": f"Bearer {token}"}
    for method, url, body in [
        ("POST", "/api/auth/signup", {"username": "ada", "password": "correct horse"}),
        ("GET", "/api/repositories", None),
        ("POST", "/api/ai/generate", {"prompt": "x", "duration": 1}),
        ("GET", "/api/webhooks/secret", None),
    ]:
        r = await http.request(method, url, json=body, headers=auth)
        assert r.status_code == 503, (url, r.text)
        assert "unavailable" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["x-content-type-options"] == "nosniff"
    # a task's status is read from the job store (Redis, up here), not from a job service
    r = await http.get("/api/ai/status/abc", headers=auth)
    assert r.status_code == 404 and r.json() == {"detail": "task not found"}


async def test_checks_that_need_no_backend(client: tuple[httpx.AsyncClient, str]) -> None:
    http, token = client
    r = await http.get("/api/repositories")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    auth = {"Authorization": f"Bearer {token}"}
    r = await http.post("/api/audio/upload", content=b"<html>not audio</html>", headers=auth)
    assert r.status_code == 415
    r = await http.post("/api/ai/generate", json={"prompt": "", "duration": 1}, headers=auth)
    assert r.status_code == 422
    r = await http.post("/api/repositories/create", json={"name": "a\u0000b"}, headers=auth)
    assert r.status_code == 422
    lone_surrogate = b'{"message": "m", "generation": {"k": "\\ud800"}}'  # valid JSON, not storable text
    r = await http.post(
        "/api/vcs/commit/r1", content=lone_surrogate, headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    studio = await http.get("/")
    assert studio.status_code == 200 and "BeatFlow Studio" in studio.text
    assert "default-src 'self'" in studio.headers["content-security-policy"]


async def test_docs_page_needs_no_cdn(client: tuple[httpx.AsyncClient, str]) -> None:
    http, _token = client
    page = await http.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "/docs-assets/swagger-ui-bundle.js" in page.text
    script = await http.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert len(script.content) > 100_000


async def test_request_bodies_other_than_uploads_are_bounded(client: tuple[httpx.AsyncClient, str]) -> None:
    """A JSON body is read whole into memory, so it has a size cap; uploads stream under their own."""
    http, token = client
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    big = b'{"message": "m", "generation": {"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}}'

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    for url, headers in [("/api/vcs/commit/r1", auth), ("/api/auth/signin", {"Content-Type": "application/json"})]:
        assert (await http.post(url, content=big, headers=headers)).status_code == 413
        assert (await http.post(url, content=chunked(), headers=headers)).status_code == 413
    # The upload route keeps its own, larger limit: judged as (not) audio, not refused by size.
    r = await http.post("/api/audio/upload", content=b"<html>" * 400_000, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 415, r.text


async def test_non_ascii_token_is_401_not_500(client: tuple[httpx.AsyncClient, str]) -> None:
    http, token = client
    bad = token.rsplit(".", 1)[0] + ".\u00e9t\u00e9"
    r = await http.get("/api/ai/tasks/t1/events", params={"access_token": bad})
    assert r.status_code == 401, r.text
    r = await http.get("/api/repositories", headers={b"Authorization": b"Bearer " + bad.encode()})
    assert r.status_code == 401, r.text


async def test_non_finite_numbers_and_broken_json_are_422(client: tuple[httpx.AsyncClient, str]) -> None:
    """NaN and Infinity parse in Python but are not JSON: a 422 naming the field, never a 500."""
    http, token = client
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for body in [
        b'{"prompt": "x", "duration": NaN}',
        b'{"prompt": NaN}',
        b'{"prompt": "x", "top_p": Infinity}',
        b'{"prompt": "x", "duration": -Infinity}',
        b'{"prompt": "x", "duration": 1e999}',
        b'{"prompt": "x", "hints": [NaN, {"a": Infinity}]}',
        b'{"prompt": "x"',
        b"\xff\xfe",
        b"[1, 2]",
    ]:
        r = await http.post("/api/ai/generate", content=body, headers=auth)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.json()["detail"], body
    r = await http.post("/api/auth/signin", content=b'{"username": NaN, "password": NaN}', headers=auth)
    assert r.status_code == 422
    assert {e["input"] for e in r.json()["detail"]} == {"nan"}


async def test_sign_out_revokes_the_token(client: tuple[httpx.AsyncClient, str]) -> None:
    http, token = client
    auth = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/api/repositories", headers=auth)).status_code == 503  # accepted; vcs is down
    r = await http.post("/api/auth/signout", headers=auth)
    assert r.status_code == 204, r.text
    r = await http.get("/api/repositories", headers=auth)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert (await http.post("/api/auth/signout", headers=auth)).status_code == 401


async def test_revocation_store_down_is_503_not_a_pass(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    settings = GatewaySettings(
        token_secret=secrets.token_hex(32),
        vcs_addr=dead,
        generator_addr=dead,
        separator_addr=dead,
        rpc_timeout_s=5,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    app = create_app(settings, store=LocalBlobStore(tmp_path / "blobs"))
    async with app.router.lifespan_context(app):
        token = app.state.gateway.signer.issue(Principal("u1", "ada"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            r = await http.get("/api/repositories", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
