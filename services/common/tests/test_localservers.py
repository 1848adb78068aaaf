"""Local servers started for the embedded stack never outlive it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from beatflow.common import localservers


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def test_stack_stops_postgres_when_redis_cannot_start(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    data = tmp_path / "data"
    pg_port = localservers.free_port()
    with socket.socket() as taken:  # bound, not listening: redis-server cannot bind it and exits
        taken.bind(("127.0.0.1", 0))
        redis_port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "beatflow.common.stack",
                "--data-dir",
                str(data),
                "--postgres-port",
                str(pg_port),
                "--redis-port",
                str(redis_port),
                "--only",
                "vcs",
                "--exit-when-ready",
            ],
            capture_output=True,
            timeout=120,
        )
    pid_file = data / "postgres" / "postmaster.pid"
    still_running = localservers._pg_running(data / "postgres")
    if still_running:  # clean up the orphan before failing
        with contextlib.suppress(Exception):
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)
    assert proc.returncode != 0
    assert not still_running, "PostgreSQL was left running after the stack failed to start"
    assert not _listening(pg_port)


def test_redis_refuses_a_port_another_server_listens_on(tmp_path: Path) -> None:
    with socket.socket() as other:  # another server already answers there
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        server = None
        try:
            with pytest.raises(RuntimeError, match="in use"):
                server = localservers.start_redis(tmp_path / "redis", port, persist=False)
        finally:
            if server is not None:
                server.stop()


def test_redis_that_never_came_up_in_time_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis runs in its own session, so one whose start timed out would outlive the tests unless
    start_redis stops it before it raises."""
    started: list[subprocess.Popen[bytes]] = []

    def never_ready(port: int, *args: object, proc: subprocess.Popen[bytes] | None = None, **kwargs: object) -> None:
        assert proc is not None
        started.append(proc)
        raise TimeoutError(f"nothing on port {port}")

    monkeypatch.setattr(localservers, "wait_for_port", never_ready)
    with pytest.raises(TimeoutError):
        localservers.start_redis(tmp_path / "redis", persist=False)
    assert len(started) == 1
    assert started[0].poll() is not None, "the redis-server process is still running"
