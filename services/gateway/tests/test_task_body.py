"""The task status body, built straight from the job store's record, is the schema's JSON.

``GET /api/ai/tasks/{id}`` skips the protobuf message and the response model (the
status poll is the gateway's most frequent request): these tests hold its bytes to
what ``TaskOut`` serialises, for records in every state a worker leaves them in,
on a real Redis (the backends' gRPC services are not needed for a status read).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from beatflow.common.blobstore import LocalBlobStore
from beatflow.common.jobs import JobQueue, JobRecord
from beatflow.common.localservers import free_port
from beatflow.gateway import convert, schemas
from beatflow.gateway.app import create_app
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.config import GatewaySettings

Client = tuple[httpx.AsyncClient, JobQueue, dict[str, str]]


@pytest.fixture
async def client(tmp_path: Path, redis_url: str) -> AsyncIterator[Client]:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there: status reads never call a backend
    settings = GatewaySettings(
        token_secret=secrets.token_hex(32),
        vcs_addr=dead,
        generator_addr=dead,
        separator_addr=dead,
        redis_url=redis_url,
        job_webhook_allow_private_targets=True,
    )
    app = create_app(settings, store=LocalBlobStore(tmp_path / "blobs"))
    async with app.router.lifespan_context(app):
        state = app.state.gateway
        token = state.signer.issue(Principal("owner-1", "ada"))
        assert state.backends.jobs is not None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            yield http, state.backends.jobs, {"Authorization": f"Bearer {token}"}


async def _claim(jobs: JobQueue, kind: str, job_id: str) -> Any:
    for _ in range(20):
        for claimed in await jobs.claim(kind, "test-worker", count=10, block_ms=50):
            if claimed.id == job_id:
                return claimed
            await claimed.release()
    raise AssertionError(f"job {job_id} was not claimed")


async def _records(jobs: JobQueue) -> list[JobRecord]:
    """Jobs left in the states a status poll sees: queued, running, succeeded, failed, cancelled."""
    made = []
    queued = await jobs.submit(
        "generate",
        {"prompt": "queued", "duration": 2.0},
        owner="owner-1",
        deadline_s=3600,
        webhook_url="http://127.0.0.1:9/hook",
        webhook_events=["completed", "failed"],
    )
    made.append(queued.id)
    running = await jobs.submit("separate", {"audio_blob": "b" * 64}, owner="owner-1")
    claimed = await _claim(jobs, "separate", running.id)
    await claimed.progress(0.25, "demucs 1/4")
    made.append(running.id)
    separated = await jobs.submit("separate", {"audio_blob": "c" * 64, "format": "flac"}, owner="owner-1")
    claimed = await _claim(jobs, "separate", separated.id)
    await claimed.complete(
        {name: name[0] * 64 for name in ("vocals", "drums", "bass", "other")},
        {"model": "htdemucs", "format": "flac"},
    )
    made.append(separated.id)
    # a generation record with the number forms JSON encoders disagree on, and text beyond ASCII
    generated = await jobs.submit("generate", {"prompt": "Upbeat électro, 128!", "format": "mp3"}, owner="owner-1")
    claimed = await _claim(jobs, "generate", generated.id)
    result = {"seed": 2**70, "tiny": 1e-5, "huge": 1e16, "third": 1 / 3, "neg_zero": -0.0, "note": "é\u2028<"}
    await claimed.complete({"audio": "d" * 64, "audio.1": "e" * 64}, result)
    made.append(generated.id)
    failing = await jobs.submit("analyze", {"audio_blob": "f" * 64}, owner="owner-1")
    claimed = await _claim(jobs, "analyze", failing.id)
    await claimed.fail("decoder said no", retryable=False)
    made.append(failing.id)
    cancelled = await jobs.submit("generate", {"prompt": "never mind"}, owner="owner-1")
    await jobs.cancel(cancelled.id)
    made.append(cancelled.id)
    records = [await jobs.get(job_id) for job_id in made]
    states = {r.state.name for r in records}
    assert states == {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"}, states
    return records


async def test_status_body_is_the_schemas_json(client: Client) -> None:
    http, jobs, auth = client
    for record in await _records(jobs):
        r = await http.get(f"/api/ai/tasks/{record.id}", headers=auth)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-content-type-options"] == "nosniff"
        # the schema's own serialisation of the body gives the same bytes: fields, order, number forms
        assert r.content == schemas.TaskOut.model_validate_json(r.content).model_dump_json().encode(), record.state
        # ...and the same value as the Jobs service's protobuf form through the model (files aside,
        # a protobuf map's order is its own)
        now = await jobs.get(record.id)
        expected = json.loads(convert.task(now.to_proto()).model_dump_json())
        body = r.json()
        if now.state.name in ("QUEUED", "RUNNING"):  # an estimate moves with the clock
            expected.pop("eta_s")
            body.pop("eta_s")
        assert body == expected
        assert list(body["files"]) == list(now.result_blobs)  # the order the worker stored them in


async def test_number_forms_and_text_follow_the_schema(client: Client) -> None:
    http, jobs, auth = client
    generated = next(r for r in await _records(jobs) if r.kind == "generate" and r.result)
    r = await http.get(f"/api/ai/tasks/{generated.id}", headers=auth)
    text = r.content.decode()
    assert '"tiny":0.00001' in text and '"huge":1e+16' in text and '"neg_zero":-0.0' in text
    assert '"seed":1180591620717411303424' in text and '"note":"é\u2028<"' in text
    files = r.json()["files"]
    assert files["audio"]["download_name"] == f"upbeat-electro-128-{'d' * 8}.mp3"
    assert files["audio.1"]["download_url"] == f"/api/audio/download/{'e' * 64}.mp3"


async def test_status_of_someone_elses_or_unknown_task_is_404(client: Client) -> None:
    http, jobs, auth = client
    theirs = await jobs.submit("generate", {"prompt": "theirs"}, owner="owner-2")
    unowned = await jobs.submit("generate", {"prompt": "nobody's"})
    for task_id in (theirs.id, unowned.id, "no-such-task", "x" * 128):
        r = await http.get(f"/api/ai/tasks/{task_id}", headers=auth)
        assert (r.status_code, r.json()) == (404, {"detail": "task not found"}), task_id
        assert r.headers["x-content-type-options"] == "nosniff"
    r = await http.get("/api/ai/tasks/bad%20id", headers=auth)
    assert r.status_code == 422
    r = await http.get(f"/api/ai/tasks/{theirs.id}")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = await http.get(f"/api/ai/tasks/{theirs.id}", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
