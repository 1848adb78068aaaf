"""The whole BeatFlow stack in one process tree, for the cross-service tests.

vcs, generator (``tiny`` model) and separator (``tiny`` model) run as
``python -m beatflow.<service>`` child processes against the session's real
PostgreSQL (a fresh database) and S3 server (a fresh bucket), with a Redis of
their own (the shared one is flushed between other tests, which would wipe the
job queue's consumer groups under running workers). The gateway runs as a
child process too (uvicorn on a free port), so the tests speak real HTTP,
SSE and WebSocket to it, exactly as a browser would.

One stack serves every test module that asks for the ``stack`` fixture
(tests/conftest.py: started on first use, stopped when the session ends,
before the servers it runs on).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beatflow.common import localservers
from beatflow.common.blobstore import S3BlobStore

BACKENDS = ("vcs", "generator", "separator")
READY_TIMEOUT_S = 180.0


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Stack:
    base_url: str
    addrs: dict[str, str]
    env: dict[str, str]
    s3: dict[str, Any]
    logs: Path
    procs: list[Proc] = field(default_factory=list)
    redis: localservers.LocalServer | None = None  # the stack's own Redis

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60.0, **kwargs)

    def store(self) -> S3BlobStore:
        return S3BlobStore(
            self.s3["s3_endpoint"], self.s3["s3_access_key"], self.s3["s3_secret_key"], self.s3["s3_bucket"]
        )

    def logs_tail(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path}) ---\n{p.log_tail(2000)}" for p in self.procs)

    def upload(self, token: str, data: bytes, name: str = "take.wav") -> dict[str, Any]:
        with self.client(token) as http:
            r = http.post("/api/audio/upload", files={"file": (name, data, "application/octet-stream")})
            assert r.status_code == 201, r.text
            return dict(r.json())

    def sse_events(self, token: str, task_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Every (event name, data) of the task's SSE stream, until the server closes it."""
        events: list[tuple[str, dict[str, Any]]] = []
        with self.client(token) as http, http.stream("GET", f"/api/ai/tasks/{task_id}/events") as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            name, data = "message", ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    events.append((name, json.loads(data)))
                    name, data = "message", ""
        return events

    def finish(self, token: str, task_id: str) -> dict[str, Any]:
        """Follow the task to its end over SSE; returns the final task."""
        events = self.sse_events(token, task_id)
        assert events and events[-1][0] == "done", events[-3:]
        return dict(events[-1][1]["task"])

    def signup(self, prefix: str = "user") -> tuple[str, str]:
        """A new user; returns (user id, bearer token)."""
        username = f"{prefix}{uuid.uuid4().hex[:8]}"
        with self.client() as http:
            r = http.post("/api/auth/signup", json={"username": username, "password": "correct horse battery"})
            assert r.status_code == 201, r.text
            body = r.json()
        return body["user"]["id"], body["access_token"]


def tone_wav(
    seconds: float = 2.0, rate: int = 16000, freq: float = 220.0, channels: int = 2, gain: float = 0.3
) -> bytes:
    """A sine tone as 16-bit WAV bytes."""
    t = np.arange(int(seconds * rate)) / rate
    mono = gain * np.sin(2 * np.pi * freq * t)
    buf = io.BytesIO()
    sf.write(buf, np.stack([mono] * channels, axis=1).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _grpc_serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _http_ok(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_ready(procs: list[Proc], check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(procs)
    while pending:
        for p in list(pending):
            if p.proc.poll() is not None:
                raise RuntimeError(f"{p.name} exited with code {p.proc.returncode}; log tail:\n{p.log_tail()}")
            if check(p.port):
                pending.remove(p)
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ---\n{p.log_tail()}" for p in pending)
            raise TimeoutError(f"not ready after {timeout_s:.0f}s: {[p.name for p in pending]}\n{tails}")
        time.sleep(0.2)


def _start(name: str, env: dict[str, str], logs: Path, port: int) -> Proc:
    log_path = logs / f"{name}.log"
    logf = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", f"beatflow.{name}"],
        env={**env, "BEATFLOW_PORT": str(port), "BEATFLOW_METRICS_PORT": str(localservers.free_port())},
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Proc(name, proc, port, log_path)


def _stop(procs: list[Proc]) -> None:
    for p in procs:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.proc.wait(15)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()


@contextlib.contextmanager
def run_stack(
    servers: Any,
    root: Path,
    backends: tuple[str, ...] = BACKENDS,
    extra_env: dict[str, str] | None = None,
    *,
    redis_persist: bool = False,
) -> Iterator[Stack]:
    """Start the services on the given real servers (and Redis of its own); stop them all on exit.

    ``redis_persist``: the Redis keeps its data on disk, so a test can stop it and start
    it again on the same data (``Stack.redis``).
    """
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    database = "stack_" + uuid.uuid4().hex[:12]
    localservers.create_database(servers.postgres_url, database)
    bucket = "stack-" + uuid.uuid4().hex[:16]
    S3BlobStore(servers.s3_endpoint, servers.s3_access_key, servers.s3_secret_key, bucket)
    s3 = {
        "blob_backend": "s3",
        "s3_endpoint": servers.s3_endpoint,
        "s3_access_key": servers.s3_access_key,
        "s3_secret_key": servers.s3_secret_key,
        "s3_bucket": bucket,
        "s3_secure": False,
    }
    redis = localservers.start_redis(root / "redis", persist=redis_persist)
    env = {
        **os.environ,
        "BEATFLOW_HOST": "127.0.0.1",
        "BEATFLOW_DATABASE_URL": servers.postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        + "/"
        + database,
        "BEATFLOW_REDIS_URL": redis.url,
        "BEATFLOW_BLOB_BACKEND": "s3",
        "BEATFLOW_S3_ENDPOINT": servers.s3_endpoint,
        "BEATFLOW_S3_ACCESS_KEY": servers.s3_access_key,
        "BEATFLOW_S3_SECRET_KEY": servers.s3_secret_key,
        "BEATFLOW_S3_BUCKET": bucket,
        "BEATFLOW_S3_SECURE": "false",
        "BEATFLOW_GENERATOR_MODEL": "tiny",
        "BEATFLOW_SEPARATOR_MODEL": "tiny",
        "BEATFLOW_GENERATOR_MELODY_MODEL": "tiny-melody",
        # Small gateway limits, so the tests can cross them cheaply.
        "BEATFLOW_MAX_UPLOAD_BYTES": str(4_000_000),
        "BEATFLOW_MAX_UPLOAD_DURATION_S": "60",
        # Downloads over 1 MiB stream with per-chunk checks (both download paths are then cheap to reach).
        "BEATFLOW_VERIFY_BEFORE_SEND_BYTES": str(1024 * 1024),
        # Cheap Argon2id (same algorithm) so sign-ups do not dominate the suite on two cores.
        "BEATFLOW_ARGON2_TIME_COST": "1",
        "BEATFLOW_ARGON2_MEMORY_KIB": "8192",
        "BEATFLOW_ARGON2_PARALLELISM": "1",
        "BEATFLOW_LOG_JSON": "false",
        "BEATFLOW_GRACE_PERIOD_S": "2",
        # webhook receivers in tests listen on loopback; retry them quickly
        "BEATFLOW_JOB_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "BEATFLOW_JOB_WEBHOOK_BACKOFF_S": "0.2",
        "BEATFLOW_TOKEN_SECRET": secrets.token_hex(32),
        # Every test signs in from 127.0.0.1: only the per-account limit is reached in tests.
        "BEATFLOW_SIGNIN_MAX_FAILURES_PER_ADDRESS": "1000",
        # Two CPU cores shared by three model-serving processes: one torch thread each.
        "BEATFLOW_GENERATOR_TORCH_THREADS": "1",
        "BEATFLOW_SEPARATOR_TORCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    procs: list[Proc] = []
    stack: Stack | None = None
    try:
        # Ports first, so the gateway can start alongside the backends it will call.
        ports = {name: localservers.free_port() for name in (*backends, "gateway")}
        addrs = {name: f"127.0.0.1:{ports[name]}" for name in backends}
        env.update({f"BEATFLOW_{name.upper()}_ADDR": addr for name, addr in addrs.items()})
        started = [_start(name, env, logs, ports[name]) for name in backends]
        procs.extend(started)
        gateway = _start("gateway", env, logs, ports["gateway"])
        procs.append(gateway)
        _wait_ready(started, _grpc_serving, READY_TIMEOUT_S)
        _wait_ready([gateway], _http_ok, 60.0)
        stack = Stack(f"http://127.0.0.1:{gateway.port}", addrs, env, s3, logs, procs, redis)
        yield stack
    finally:
        try:
            _stop(list(reversed(procs)))
        finally:
            # Redis runs in its own session, so it outlives the test run unless stopped here: stop the
            # one started above and any a test started in its place (``Stack.redis``), each with a
            # bounded wait and then SIGKILL, even when stopping the services failed.
            redises = [redis]
            if stack is not None and stack.redis is not None and stack.redis is not redis:
                redises.append(stack.redis)
            for server in redises:
                server.stop(timeout_s=10.0)  # a no-op for one already stopped
