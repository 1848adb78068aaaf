"""`make run`'s launcher brings every installed service up and stops them all cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from beatflow.common import localservers
from beatflow.common.stack import SERVICES, gateway_workers, installed

EXPECTED_GRPC = {
    "vcs": "beatflow.v1.Vcs",
    "generator": "beatflow.v1.Generator",
    "separator": "beatflow.v1.Separator",
}


def _reflected_services(port: int) -> set[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        return {s.name for r in responses for s in r.list_services_response.service}


def _health(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return int(resp.status)


def test_stack_starts_serves_and_stops(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    offset = localservers.free_port() % 1000 + 20000  # away from the default ports
    env = {
        **os.environ,
        "BEATFLOW_GENERATOR_MODEL": "tiny",
        "BEATFLOW_SEPARATOR_MODEL": "tiny",
        "BEATFLOW_GRACE_PERIOD_S": "2",
        "PYTHONUNBUFFERED": "1",
    }
    args = [
        sys.executable,
        "-m",
        "beatflow.common.stack",
        "--data-dir",
        str(tmp_path / "data"),
        "--port-offset",
        str(offset),
        "--postgres-port",
        str(localservers.free_port()),
        "--redis-port",
        str(localservers.free_port()),
        "--ready-timeout",
        "240",
    ]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "BeatFlow is up" in line:
                break
        output = "".join(lines)
        assert "BeatFlow is up" in output, output
        for name, service in EXPECTED_GRPC.items():
            if not installed(name):
                continue
            port = SERVICES[name][0] + offset
            assert f"{name}" in output and "SERVING" in output
            assert _health(port) == health_pb2.HealthCheckResponse.SERVING
            reflected = _reflected_services(port)
            assert service in reflected, reflected
            assert "grpc.health.v1.Health" in reflected
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
        lines.append(rest or "")
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "redis and postgres stopped" in output
    for name in EXPECTED_GRPC:
        if installed(name):
            assert f"{name:<10} stopped" in output
    if installed("generator"):
        assert "model tiny" in output  # the start-up table names the generator's model
    if installed("gateway"):
        assert f"{gateway_workers()} workers" in output  # the gateway's worker processes, one per core up to 4
    # Data persists under the one data directory.
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
