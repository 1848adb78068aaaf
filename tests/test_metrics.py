"""Every service, run as its container runs it (``python -m beatflow.<name>`` with
``BEATFLOW_*`` settings), serves Prometheus metrics on its metrics port: after real
calls and a real job, a scrape over HTTP finds them counted, and the job's log
lines carry its id.

Real PostgreSQL, Redis and S3 (moto) come from the root fixtures; models are the
tiny presets on the CPU.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from beatflow.common import healthcheck
from beatflow.common.blobstore import S3BlobStore
from beatflow.common.localservers import free_port
from beatflow.separator.testsignals import click_track, encode
from beatflow.v1 import (
    generator_pb2,
    generator_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    separator_pb2,
    separator_pb2_grpc,
    vcs_pb2,
    vcs_pb2_grpc,
)

READY_TIMEOUT_S = 180.0
TERMINAL = {
    jobs_pb2.JOB_STATE_SUCCEEDED,
    jobs_pb2.JOB_STATE_FAILED,
    jobs_pb2.JOB_STATE_CANCELLED,
    jobs_pb2.JOB_STATE_DEAD,
}


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines

    def fail(self, why: str) -> None:
        tail = self.log_path.read_text(errors="replace")[-4000:]
        pytest.fail(f"{self.name}: {why}; log tail:\n{tail}")


class Stack:
    """Service processes started with one environment, stopped (SIGTERM) at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.services: dict[str, Service] = {}

    def start(self, name: str, **extra: str) -> Service:
        port, metrics_port = free_port(), free_port()
        env = {**self.env, "BEATFLOW_PORT": str(port), "BEATFLOW_METRICS_PORT": str(metrics_port), **extra}
        log_path = self.logs / f"{name}.log"
        with open(log_path, "wb") as log:
            cmd = [sys.executable, "-m", f"beatflow.{name}"]
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        svc = Service(name, proc, port, metrics_port, log_path)
        self.services[name] = svc
        return svc

    def run_once(self, name: str, *args: str) -> None:
        cmd = [sys.executable, "-m", f"beatflow.{name}", *args]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stdout + out.stderr

    def wait_ready(self, svc: Service) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if svc.proc.poll() is not None:
                svc.fail(f"exited with code {svc.proc.returncode} before it was ready")
            if svc.name == "gateway":
                status = healthcheck.check_http(f"http://{svc.target}/health", timeout_s=2.0)
            else:
                status = healthcheck.check_grpc(svc.target, timeout_s=2.0)
            if status == "SERVING":
                return
            time.sleep(0.3)
        svc.fail(f"not SERVING after {READY_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        for svc in self.services.values():
            if svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        for svc in self.services.values():
            try:
                svc.proc.wait(30)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
                svc.proc.wait()


def scrape(svc: Service) -> str:
    response = httpx.get(f"http://127.0.0.1:{svc.metrics_port}/metrics", timeout=10.0)
    response.raise_for_status()
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels`` (0 when none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def has_sample(text: str, name: str, **labels: str) -> bool:
    return any(
        sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    )


def wait_job(channel: grpc.Channel, job_id: str, timeout_s: float = 120.0) -> jobs_pb2.Job:
    stub = jobs_pb2_grpc.JobsStub(channel)
    for _event in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=timeout_s):
        pass  # the stream ends after the terminal event
    job = stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), timeout=10)
    assert job.state in TERMINAL
    return job


@pytest.fixture
def stack(tmp_path: Path, database_url: str, redis_url: str, s3_settings: dict[str, Any]) -> Iterator[Stack]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "BEATFLOW_HOST": "127.0.0.1",
        "BEATFLOW_LOG_JSON": "true",
        "BEATFLOW_LOG_LEVEL": "INFO",
        "BEATFLOW_GRACE_PERIOD_S": "2",
        "BEATFLOW_REDIS_URL": redis_url,
        "BEATFLOW_DATABASE_URL": database_url,
        "BEATFLOW_GENERATOR_MODEL": "tiny",
        "BEATFLOW_GENERATOR_DEVICE": "cpu",
        "BEATFLOW_SEPARATOR_MODEL": "tiny",
        "BEATFLOW_SEPARATOR_DEVICE": "cpu",
        "BEATFLOW_TOKEN_SECRET": secrets.token_hex(32),
        "HF_HUB_OFFLINE": "1",
        **{f"BEATFLOW_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in s3_settings.items()},
    }
    running = Stack(env, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_separator_counts_rpcs_and_analysis_job_and_logs_job_id(stack: Stack, s3_store: Any) -> None:
    separator = stack.start("separator")
    stack.wait_ready(separator)
    store: S3BlobStore = s3_store
    wav = encode(click_track(120.0, 3.0, sr=22050), 22050)
    audio_key = store.put_bytes(wav, content_type="audio/wav")

    with grpc.insecure_channel(separator.target) as channel:
        job = separator_pb2_grpc.SeparatorStub(channel).SubmitAnalysis(
            separator_pb2.AnalyzeRequest(audio_blob=audio_key, owner="metrics-test"), timeout=30
        )
        done = wait_job(channel, job.id)
    assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED, done.error

    text = scrape(separator)
    assert value(text, "beatflow_jobs_total", kind="analyze", state="SUCCEEDED") == 1
    assert value(text, "beatflow_job_seconds_count", kind="analyze") == 1
    assert value(text, "beatflow_rpc_total", method="/beatflow.v1.Separator/SubmitAnalysis", code="OK") == 1
    assert value(text, "beatflow_rpc_total", method="/beatflow.v1.Jobs/GetJob", code="OK") == 1
    assert value(text, "beatflow_rpc_seconds_count", method="/beatflow.v1.Separator/SubmitAnalysis") == 1
    # The workers sample their queues: nothing waits once the job is done.
    for kind in ("analyze", "separate"):
        assert has_sample(text, "beatflow_job_queue_depth", kind=kind), kind
        assert value(text, "beatflow_job_queue_depth", kind=kind) == 0
    # The readiness probes above went through the same interceptor.
    assert value(text, "beatflow_rpc_total", method="/grpc.health.v1.Health/Check") >= 1

    # Structured logs: JSON lines, and the lines written while the job ran carry its id.
    lines = separator.log_lines()
    assert lines and all({"ts", "level", "service", "msg"} <= line.keys() for line in lines)
    assert {line["service"] for line in lines} == {"separator"}
    job_lines = [line for line in lines if line.get("job_id") == job.id]
    assert job_lines, "no log line carries the job id"
    about_job = [line for line in lines if job.id in line["msg"]]
    assert about_job and all(line.get("job_id") == job.id for line in about_job), about_job


def test_vcs_and_gateway_count_rpcs_and_http_requests(stack: Stack) -> None:
    stack.run_once("vcs", "migrate")  # what the vcs-migrate Job / compose service runs
    vcs = stack.start("vcs", BEATFLOW_MIGRATE_ON_START="false")  # as deployed: the job migrated
    stack.wait_ready(vcs)
    # two worker processes, as make run starts them; no secret set: the supervisor picks one for both
    gateway = stack.start(
        "gateway", BEATFLOW_VCS_ADDR=vcs.target, BEATFLOW_GATEWAY_WORKERS="2", BEATFLOW_TOKEN_SECRET=""
    )
    stack.wait_ready(gateway)

    with grpc.insecure_channel(vcs.target) as channel:
        stub = vcs_pb2_grpc.VcsStub(channel)
        stub.CreateUser(vcs_pb2.CreateUserRequest(username="metrics-user", password_hash="x"), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateUser(vcs_pb2.CreateUserRequest(username="metrics-user", password_hash="x"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    text = scrape(vcs)
    assert value(text, "beatflow_rpc_total", method="/beatflow.v1.Vcs/CreateUser", code="OK") == 1
    assert value(text, "beatflow_rpc_total", method="/beatflow.v1.Vcs/CreateUser", code="ALREADY_EXISTS") == 1
    assert value(text, "beatflow_rpc_seconds_count", method="/beatflow.v1.Vcs/CreateUser") == 2
    assert {line["service"] for line in vcs.log_lines()} == {"vcs"}

    health_checks = value(text, "beatflow_rpc_total", method="/grpc.health.v1.Health/Check")
    response = httpx.get(f"http://{gateway.target}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["backends"]["vcs"] == "SERVING"
    gateway_text = scrape(gateway)
    # The readiness wait and the request above: both counted under the route template.
    assert value(gateway_text, "beatflow_http_requests_total", method="GET", route="/health", status="200") >= 2
    assert value(gateway_text, "beatflow_http_request_seconds_count", method="GET", route="/health") >= 2
    # The gateway asked the vcs's health over gRPC, and the vcs counted it.
    assert value(scrape(vcs), "beatflow_rpc_total", method="/grpc.health.v1.Health/Check") > health_checks

    # Each request on a new connection (either worker may take it): a token one worker signed is good
    # on every one, and the metrics port counts every request once, summed over the workers.
    signup = httpx.post(
        f"http://{gateway.target}/api/auth/signup",
        json={"username": "workers", "password": "correct horse"},
        timeout=30,
    )
    assert signup.status_code == 201, signup.text
    auth = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    for _ in range(8):
        r = httpx.get(f"http://{gateway.target}/api/ai/tasks/nope", headers=auth, timeout=10)
        assert (r.status_code, r.json()) == (404, {"detail": "task not found"})
    gateway_text = scrape(gateway)
    assert (
        value(gateway_text, "beatflow_http_requests_total", method="GET", route="/api/ai/tasks/{task_id}", status="404")
        == 8
    )
    assert (
        value(gateway_text, "beatflow_http_requests_total", method="POST", route="/api/auth/signup", status="201") == 1
    )


def test_generator_counts_a_generation_job(stack: Stack) -> None:
    generator = stack.start("generator")
    stack.wait_ready(generator)
    with grpc.insecure_channel(generator.target) as channel:
        job = generator_pb2_grpc.GeneratorStub(channel).SubmitGeneration(
            generator_pb2.GenerateRequest(prompt="metrics test beat", duration_s=0.5, seed=7, owner="metrics-test"),
            timeout=30,
        )
        done = wait_job(channel, job.id)
    assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED, done.error
    text = scrape(generator)
    assert value(text, "beatflow_jobs_total", kind="generate", state="SUCCEEDED") == 1
    assert value(text, "beatflow_job_seconds_count", kind="generate") == 1
    assert value(text, "beatflow_rpc_total", method="/beatflow.v1.Generator/SubmitGeneration", code="OK") == 1
    assert has_sample(text, "beatflow_job_queue_depth", kind="generate")
    assert value(text, "beatflow_job_queue_depth", kind="generate") == 0
    assert any(line.get("job_id") == job.id for line in generator.log_lines())
