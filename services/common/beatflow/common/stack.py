"""The embedded single-machine stack behind ``make run``.

Starts real PostgreSQL and Redis (from Python wheels) with their data under one
data directory, then every BeatFlow service that is installed as its own
process, waits until each answers SERVING on the standard gRPC health protocol,
prints where everything listens, and on Ctrl-C (or SIGTERM) stops the services
gracefully, then Redis and PostgreSQL. Data persists between runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from beatflow.common import healthcheck, localservers

# name -> (gRPC port, metrics port); the gateway's port is HTTP.
SERVICES: dict[str, tuple[int, int]] = {
    "vcs": (50053, 9103),
    "separator": (50052, 9102),
    "generator": (50051, 9101),
    "gateway": (8000, 9104),
}


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)


def gateway_workers() -> int:
    """Gateway processes ``make run`` starts: ``BEATFLOW_GATEWAY_WORKERS``, else one per core up to 4.

    One Python process serves HTTP on one core at most; more use the others when the
    API is busy and cost only memory while it is not.
    """
    configured = os.environ.get("BEATFLOW_GATEWAY_WORKERS", "").strip()
    return int(configured) if configured else max(1, min(os.cpu_count() or 1, 4))


def installed(name: str) -> bool:
    return importlib.util.find_spec(f"beatflow.{name}.__main__") is not None


def grpc_serving(port: int, timeout_s: float = 1.0) -> bool:
    return healthcheck.check_grpc(f"127.0.0.1:{port}", timeout_s=timeout_s) == "SERVING"


def cli_example(url: str) -> str:
    """Five lines showing the ``beatflow`` command-line client against this stack."""
    return (
        "  from a shell (beatflow is in .venv/bin):\n"
        f"    beatflow login --server {url} --signup\n"
        "    mkdir my-song && cd my-song && beatflow init my-song && cp ~/bounces/*.wav .\n"
        "    beatflow status && beatflow commit -m 'first bounce'\n"
        "    beatflow clone my-song ../elsewhere && beatflow log\n"
        "    beatflow generate 'lo-fi drums' --bpm 90 -o idea.wav && beatflow separate idea.wav"
    )


def describe(name: str, port: int) -> str:
    """What a service serves, for the start-up table (the generator names its model)."""
    if name != "generator":
        return ""
    import grpc

    from beatflow.v1 import generator_pb2, generator_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            info = generator_pb2_grpc.GeneratorStub(channel).GetModelInfo(generator_pb2.ModelInfoRequest(), timeout=5)
        except grpc.RpcError:
            return ""
    melody = f", melody {info.melody_spec}" if info.melody_spec and info.melody_spec != info.spec else ""
    return f"  model {info.spec}{melody} on {info.device} ({info.backend})"


def http_ok(port: int) -> bool:
    return healthcheck.check_http(f"http://127.0.0.1:{port}/health", timeout_s=2) == "SERVING"


def _token_secret(data: Path) -> str:
    """One signing secret per data directory, so sign-ins survive a restart."""
    path = data / "token-secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole BeatFlow stack on this machine.")
    parser.add_argument("--data-dir", default=os.environ.get("BEATFLOW_DATA_DIR", ".data"))
    parser.add_argument("--postgres-port", type=int, default=int(os.environ.get("BEATFLOW_PG_PORT", "55432")))
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("BEATFLOW_REDIS_PORT", "56379")))
    parser.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("BEATFLOW_PORT_OFFSET", "0")),
        help="added to every service port (to run a second stack beside the first)",
    )
    parser.add_argument("--only", nargs="*", help="services to start (default: every installed one)")
    parser.add_argument("--exit-when-ready", action="store_true", help="start, check health, stop (smoke test)")
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)

    data = Path(args.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    print(f"BeatFlow: data in {data}", flush=True)
    pg = localservers.start_postgres(data / "postgres", args.postgres_port)
    try:
        localservers.ensure_database(pg.url, "beatflow")
        redis = localservers.start_redis(data / "redis", args.redis_port)
    except BaseException:  # PostgreSQL runs in its own session: Ctrl-C would not reach it
        pg.stop()
        raise
    print(f"  postgres   {pg.url}/beatflow", flush=True)
    print(f"  redis      {redis.url}", flush=True)
    print(f"  blobs      {data / 'blobs'}", flush=True)

    ports = {name: (grpc + args.port_offset, met + args.port_offset) for name, (grpc, met) in SERVICES.items()}
    env = {
        **os.environ,
        "BEATFLOW_DATABASE_URL": pg.url.replace("postgresql://", "postgresql+asyncpg://") + "/beatflow",
        "BEATFLOW_REDIS_URL": redis.url,
        "BEATFLOW_BLOB_BACKEND": os.environ.get("BEATFLOW_BLOB_BACKEND", "local"),
        "BEATFLOW_BLOB_DIR": os.environ.get("BEATFLOW_BLOB_DIR", str(data / "blobs")),
        "BEATFLOW_GENERATOR_FALLBACK_TINY": os.environ.get("BEATFLOW_GENERATOR_FALLBACK_TINY", "true"),
        "BEATFLOW_SEPARATOR_FALLBACK_TINY": os.environ.get("BEATFLOW_SEPARATOR_FALLBACK_TINY", "true"),
        "BEATFLOW_LOG_JSON": os.environ.get("BEATFLOW_LOG_JSON", "false"),
        "BEATFLOW_VCS_ADDR": f"127.0.0.1:{ports['vcs'][0]}",
        "BEATFLOW_GENERATOR_ADDR": f"127.0.0.1:{ports['generator'][0]}",
        "BEATFLOW_SEPARATOR_ADDR": f"127.0.0.1:{ports['separator'][0]}",
        "BEATFLOW_TOKEN_SECRET": os.environ.get("BEATFLOW_TOKEN_SECRET") or _token_secret(data),
        "PYTHONUNBUFFERED": "1",
    }
    wanted = args.only or list(SERVICES)
    running: list[Running] = []
    try:
        for name in wanted:
            if not installed(name):
                print(f"  {name:<10} not installed, skipped", flush=True)
                continue
            port, metrics_port = ports[name]
            svc_env = {**env, "BEATFLOW_PORT": str(port), "BEATFLOW_METRICS_PORT": str(metrics_port)}
            if name == "gateway":
                svc_env["BEATFLOW_HOST"] = os.environ.get("BEATFLOW_GATEWAY_HOST", "127.0.0.1")
                svc_env["BEATFLOW_GATEWAY_WORKERS"] = str(gateway_workers())
            log_path = logs / f"{name}.log"
            logf = open(log_path, "ab")
            proc = subprocess.Popen(
                [sys.executable, "-m", f"beatflow.{name}"], env=svc_env, stdout=logf, stderr=subprocess.STDOUT
            )
            running.append(Running(name, proc, port, log_path))

        deadline = time.monotonic() + args.ready_timeout
        pending = list(running)
        while pending and not stop_requested:
            for svc in list(pending):
                if svc.proc.poll() is not None:
                    tail = svc.log_path.read_text(errors="replace")[-3000:]
                    print(f"  {svc.name} exited with code {svc.proc.returncode}; log tail:\n{tail}", flush=True)
                    return 1
                ok = http_ok(svc.port) if svc.name == "gateway" else grpc_serving(svc.port)
                if ok:
                    kind = "http" if svc.name == "gateway" else "grpc"
                    about = f"  {gateway_workers()} workers" if svc.name == "gateway" else describe(svc.name, svc.port)
                    print(
                        f"  {svc.name:<10} {kind}://127.0.0.1:{svc.port}  SERVING{about}  (log {svc.log_path})",
                        flush=True,
                    )
                    pending.remove(svc)
            if time.monotonic() > deadline:
                print(f"  not ready after {args.ready_timeout:.0f}s: {[s.name for s in pending]}", flush=True)
                return 1
            time.sleep(0.5)
        if not stop_requested:
            if any(s.name == "gateway" for s in running):
                url = f"http://127.0.0.1:{ports['gateway'][0]}"
                print(f"BeatFlow is up: studio at {url}/  (Ctrl-C stops)", flush=True)
                print(cli_example(url), flush=True)
            else:
                print("BeatFlow is up (Ctrl-C stops)", flush=True)
        while not stop_requested and not args.exit_when_ready:
            for svc in running:
                if svc.proc.poll() is not None:
                    print(f"  {svc.name} exited with code {svc.proc.returncode}; see {svc.log_path}", flush=True)
                    stop_requested = True
            time.sleep(0.5)
        return 0
    finally:
        print("BeatFlow: stopping", flush=True)
        for svc in reversed(running):
            if svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        for svc in reversed(running):
            try:
                svc.proc.wait(30)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
            print(f"  {svc.name:<10} stopped", flush=True)
        redis.stop()
        pg.stop()
        print("  redis and postgres stopped; data kept in", data, flush=True)


if __name__ == "__main__":
    sys.exit(main())
