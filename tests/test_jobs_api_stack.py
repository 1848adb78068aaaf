"""The job API integrators use, over HTTP against the whole stack: deadlines (body and
Cancel-After), ETA and retry fields, signed webhooks to a receiver on loopback (allowed
by the stack's operator setting), secret rotation and the dead-letter endpoints."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.stack_fixtures import Stack


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.arrived:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/beatflow"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout_s: float = 60.0) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= n, timeout_s), self.received
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_task_with_webhook_deadline_and_eta(stack: Stack, receiver: Receiver) -> None:
    _user, token = stack.signup("hooks")
    body = {
        "prompt": "lofi drums",
        "duration": 1.0,
        "seed": 3,
        "webhook_url": receiver.url,
        "webhook_events": ["started", "completed"],
        "deadline_s": 3600,
    }
    with stack.client(token) as http:
        secret = http.get("/api/webhooks/secret").json()["secret"]
        assert secret.startswith("whsec_") and http.get("/api/webhooks/secret").json()["secret"] == secret
        r = http.post("/api/ai/generate", json=body, headers={"Cancel-After": "2h"})
        assert r.status_code == 202, r.text
        task = r.json()
    # the earlier of body and header wins
    assert task["deadline_at"] == pytest.approx(time.time() + 3600, abs=120)
    assert task["webhook_url"] == receiver.url and task["webhook_events"] == ["started", "completed"]
    assert task["max_attempts"] >= 1 and "eta_basis" in task and task["cancel_reason"] is None
    events = stack.sse_events(token, task["task_id"])
    assert all("queue_position" in data and "eta_s" in data for _name, data in events)
    final = events[-1][1]["task"]
    assert final["status"] == "succeeded" and final["eta_s"] == 0.0

    got = receiver.wait_for(2)
    payloads = [Webhook(secret).verify(b, h) for h, b in got]
    # several services run delivery loops, so arrival order is not promised: the payload's time orders them
    by_type = {p["type"]: p for p in payloads}
    assert sorted(by_type) == ["task.completed", "task.started"]
    assert by_type["task.started"]["timestamp"] <= by_type["task.completed"]["timestamp"]
    payloads = [by_type["task.started"], by_type["task.completed"]]
    assert payloads[1]["data"]["task_id"] == task["task_id"] and payloads[1]["data"]["status"] == "succeeded"
    assert payloads[1]["data"]["result_blobs"] == {k: v["blob_key"] for k, v in final["files"].items()}

    with stack.client(token) as http:
        rotated = http.post("/api/webhooks/secret/rotate").json()["secret"]
        assert rotated != secret and http.get("/api/webhooks/secret").json()["secret"] == rotated
        assert http.get("/api/webhooks/dead-letters").json() == {"deliveries": []}
        assert http.post("/api/webhooks/dead-letters/evt_nope_1-0/redeliver").status_code == 404
        # a cancelled task notifies with the rotated secret only
        queued = http.post(
            "/api/ai/generate",
            json={"prompt": "x", "duration": 1.0, "webhook_url": receiver.url, "webhook_events": ["cancelled"]},
        ).json()
        http.post(f"/api/ai/tasks/{queued['task_id']}/cancel")
    final2 = stack.finish(token, queued["task_id"])
    if final2["status"] == "cancelled":
        headers, raw = receiver.wait_for(3)[2]
        assert Webhook(rotated).verify(raw, headers)["data"]["cancel_reason"] == "user"
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(raw, headers)


def test_submit_options_are_validated(stack: Stack) -> None:
    _user, token = stack.signup("opts")
    base = {"prompt": "x", "duration": 1.0}
    with stack.client(token) as http:
        # zero, negative or malformed: refused by the header's schema (422)
        for value in ("soon", "-5s", "0", "0s", "0m0s", "400d"):
            r = http.post("/api/ai/generate", json=base, headers={"Cancel-After": value})
            assert r.status_code == 422, (value, r.text)
        # further out than 366 days: capped there
        r = http.post("/api/ai/generate", json=base, headers={"Cancel-After": "9000h"})
        assert r.status_code == 202, r.text
        far = r.json()
        assert far["deadline_at"] == pytest.approx(time.time() + 366 * 86400, abs=60)
        http.post(f"/api/ai/tasks/{far['task_id']}/cancel")
        assert http.post("/api/ai/generate", json={**base, "deadline_s": 0}).status_code == 422
        assert http.post("/api/ai/generate", json={**base, "webhook_events": ["done"]}).status_code == 422
        r = http.post("/api/ai/generate", json={**base, "webhook_url": "ftp://example.com/x"})
        assert r.status_code == 422 and "webhook_url" in r.text  # the schema states the URL's form
        r = http.post("/api/ai/generate", json=base, headers={"Cancel-After": "1m30s"})
        assert r.status_code == 202
        task = r.json()
        assert task["deadline_at"] == pytest.approx(time.time() + 90, abs=30)
        http.post(f"/api/ai/tasks/{task['task_id']}/cancel")
        spec = http.get("/openapi.json").json()
        assert "/api/webhooks/dead-letters/{event_id}/redeliver" in spec["paths"]
        params = {p["name"] for p in spec["paths"]["/api/ai/generate"]["post"]["parameters"]}
        assert "Cancel-After" in params
