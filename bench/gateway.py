"""Gateway request rate: task status and history reads with many concurrent clients.

Starts the embedded stack's pieces (real PostgreSQL, an S3 server, Redis, vcs,
generator with the ``tiny`` model, and the gateway as child processes, through
``tests/stack_fixtures.run_stack``), makes one finished generation task and a
repository with a few commits, then drives, from a separate load process of
raw keep-alive HTTP/1.1 connections on asyncio (uvloop when installed): each
client writes a prepared request and reads the head and Content-Length body,
with no HTTP library in between, so the client costs the shared CPUs far less
than the server it loads (an httpx client costs several times more per request):

* ``GET /api/ai/tasks/{id}`` — task status (gateway -> Jobs.GetJob -> Redis);
* ``GET /api/vcs/history/{repo}`` — history (gateway -> vcs -> PostgreSQL);
* ``GET /`` of a trivial FastAPI app served by uvicorn the same way as the
  gateway (as many worker processes), in the same run: the ceiling Python HTTP
  processes reach here;
* ``Jobs.GetJob`` called on the generator directly over gRPC (no gateway): how
  much of the status figure the backend behind the gateway allows.

The gateway runs as ``make run`` starts it: ``--gateway-workers`` processes (by default
the number ``make run`` picks on this machine, ``beatflow.common.stack.gateway_workers``),
and the trivial app with as many.

Every response must be 200, or the run fails. Besides requests/second and
latency, the table gives the CPU time each request cost the serving process
(the gateway or the trivial app, with all its workers) and the stack behind it (vcs,
generator and Redis), read from /proc around each measurement: on a busy machine these
per-request costs move far less than the rates do. Prints a table and writes JSON.

    python bench/gateway.py [--clients 64] [--seconds 5] [--repeat 2] [--gateway-workers N]
    python bench/gateway.py --clients 32 --seconds 2 --repeat 1   # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds a queue.py that would shadow the standard library's: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
import queue  # noqa: E402  (the standard library's, now that bench/ is off the path)

from beatflow.common import localservers  # noqa: E402
from beatflow.common.stack import gateway_workers  # noqa: E402
from tests.stack_fixtures import run_stack, tone_wav  # noqa: E402

TRIVIAL_APP = """
import os

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    workers = {workers}
    uvicorn.run(
        "trivial_app:app" if workers > 1 else app,
        app_dir=os.path.dirname(__file__),
        workers=workers,
        host="127.0.0.1",
        port={port},
        log_config=None,
        access_log=False,
    )
"""


@dataclass
class Servers:
    postgres_url: str
    redis_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str


async def _load(host: str, port: int, path: str, headers: str, clients: int, seconds: float) -> dict[str, Any]:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}\r\n".encode()
    done, bad, latencies = 0, 0, []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done, bad
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if status == 200:
                    done += 1
                else:
                    bad += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": done,
        "errors": bad,
        "seconds": round(elapsed, 3),
        "rps": round(done / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
    }


async def _grpc_load(addr: str, job_id: str, clients: int, seconds: float) -> dict[str, Any]:
    import grpc

    from beatflow.v1 import jobs_pb2, jobs_pb2_grpc

    done, latencies = 0, []
    deadline = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = jobs_pb2_grpc.JobsStub(channel)
        request = jobs_pb2.GetJobRequest(job_id=job_id)

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await stub.GetJob(request, timeout=30)
                latencies.append(time.perf_counter() - t0)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": done,
        "errors": 0,
        "seconds": round(elapsed, 3),
        "rps": round(done / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


def _load_process(args: tuple[Any, ...], out: Any) -> None:
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    if args[0] == "grpc":
        out.put(run(_grpc_load(*args[1:])))
    else:
        out.put(run(_load(*args)))


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a gateway's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _cpu_s(pids: list[int]) -> float | None:
    """User + system CPU seconds the processes used so far (Linux /proc; None elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _run_load(args: tuple[Any, ...], seconds: float, server: list[int], behind: list[int]) -> dict[str, Any]:
    """Run the load from its own process (its CPU is not the server's); add the servers' CPU per request."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(args, out))
    before = (_cpu_s(server), _cpu_s(behind))
    proc.start()
    deadline = time.monotonic() + seconds + 120
    while True:
        try:
            result: dict[str, Any] = out.get(timeout=1)
            break
        except queue.Empty:
            if not proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the load process ended without figures (exit code {proc.exitcode})") from None
    after = (_cpu_s(server), _cpu_s(behind))
    proc.join(30)
    for key, b, a in (("server_cpu_ms", before[0], after[0]), ("behind_cpu_ms", before[1], after[1])):
        ok = b is not None and a is not None and result["requests"] and (server if key[0] == "s" else behind)
        result[key] = round((a - b) * 1000 / result["requests"], 3) if ok else None  # type: ignore[operator]
    return result


def measure_grpc(addr: str, job_id: str, clients: int, seconds: float, behind: list[int]) -> dict[str, Any]:
    return _run_load(("grpc", addr, job_id, clients, seconds), seconds, [], behind)


def measure(
    url: str, path: str, token: str, clients: int, seconds: float, server: list[int], behind: list[int]
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    headers = f"Authorization: Bearer {token}\r\n" if token else ""
    result = _run_load((host, int(port), path, headers, clients, seconds), seconds, server, behind)
    if result["errors"]:
        raise RuntimeError(f"{path}: {result['errors']} responses were not 200")
    return result


def setup(stack: Any) -> tuple[str, str, str]:
    """A user, a finished generation task and a repository with a few commits: (token, task id, repo id)."""
    _uid, token = stack.signup("bench")
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.base_url, headers=auth, timeout=120) as http:
        r = http.post("/api/ai/generate", json={"prompt": "bench", "duration": 1.0, "seed": 1})
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        assert stack.finish(token, task_id)["status"] == "succeeded"
        repo = http.post("/api/repositories/create", json={"name": "bench"})
        assert repo.status_code == 201, repo.text
        repo_id = repo.json()["id"]
        for i in range(5):
            blob = stack.upload(token, tone_wav(seconds=0.5, freq=220.0 + 20 * i), f"take{i}.wav")
            c = http.post(
                f"/api/vcs/commit/{repo_id}",
                json={"message": f"take {i}", "stems": [{"name": "lead", "blob_key": blob["blob_key"]}]},
            )
            assert c.status_code == 201, c.text
    return token, task_id, repo_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent keep-alive connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (interleaved); the best is reported")
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=gateway_workers(),
        help="gateway processes (default: what make run starts here, %(default)s)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gateway.json"))
    args = parser.parse_args()

    rows: dict[str, list[dict[str, Any]]] = {
        "trivial FastAPI": [],
        "task status": [],
        "history": [],
        "GetJob (gRPC)": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        pg = localservers.start_postgres(root / "pg", fsync=False)
        s3 = localservers.start_s3(log_dir=root)
        servers = Servers(pg.url, "", s3.url, "testing", "testing-secret")
        trivial_port = localservers.free_port()
        trivial_app = root / "trivial_app.py"
        trivial_app.write_text(
            TRIVIAL_APP.replace("{port}", str(trivial_port)).replace("{workers}", str(args.gateway_workers))
        )
        trivial = subprocess.Popen([sys.executable, str(trivial_app)])
        try:
            extra = {
                "BEATFLOW_LOG_LEVEL": "WARNING",
                "BEATFLOW_MAX_UPLOAD_DURATION_S": "60",
                "BEATFLOW_GATEWAY_WORKERS": str(args.gateway_workers),
            }
            with run_stack(servers, root, backends=("vcs", "generator"), extra_env=extra) as stack:
                token, task_id, repo_id = setup(stack)
                trivial_url = f"http://127.0.0.1:{trivial_port}"
                pids = {p.name: p.proc.pid for p in stack.procs}
                redis_pid = [stack.redis.proc.pid] if stack.redis is not None else []
                gateway = [pids["gateway"], *_children(pids["gateway"])]  # the supervisor and its workers
                behind = [pids["vcs"], pids["generator"], *redis_pid]
                n, secs = args.clients, args.seconds
                for _ in range(args.repeat):
                    trivial_pids = [trivial.pid, *_children(trivial.pid)]
                    rows["trivial FastAPI"].append(measure(trivial_url, "/", "", n, secs, trivial_pids, []))
                    rows["task status"].append(
                        measure(stack.base_url, f"/api/ai/tasks/{task_id}", token, n, secs, gateway, behind)
                    )
                    rows["history"].append(
                        measure(stack.base_url, f"/api/vcs/history/{repo_id}", token, n, secs, gateway, behind)
                    )
                    rows["GetJob (gRPC)"].append(measure_grpc(stack.addrs["generator"], task_id, n, secs, behind))
                    print("  round:", {k: v[-1]["rps"] for k, v in rows.items()}, file=sys.stderr)
        finally:
            trivial.terminate()
            trivial.wait(10)
            s3.stop()
            pg.stop()

    best = {name: max(runs, key=lambda r: r["rps"]) for name, runs in rows.items()}
    ceiling = best["trivial FastAPI"]["rps"]
    print(
        f"\ngateway reads, {args.clients} concurrent keep-alive clients, {os.cpu_count()} CPUs, "
        f"gateway workers: {args.gateway_workers}"
    )
    print(
        f"{'endpoint':<16} {'req/s':>9} {'of ceiling':>11} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server CPU':>11} {'behind CPU':>11}   all rounds req/s"
    )
    for name, row in best.items():
        share = f"{row['rps'] / ceiling:.0%}" if ceiling else "-"
        rounds = [r["rps"] for r in rows[name]]
        cpu = [f"{row[k]:.3f} ms" if row.get(k) is not None else "-" for k in ("server_cpu_ms", "behind_cpu_ms")]
        print(
            f"{name:<16} {row['rps']:>9.1f} {share:>11} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{cpu[0]:>11} {cpu[1]:>11}   {rounds}"
        )
    print("(server CPU: the gateway's, or the trivial app's, per request; behind: vcs + generator + Redis)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "gateway",
                "args": vars(args),
                "machine": {
                    "cpus": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0],
                    "python": platform.python_version(),
                },
                "best": best,
                "rounds": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
