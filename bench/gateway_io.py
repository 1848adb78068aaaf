"""Gateway audio I/O: upload and download throughput, and the gateway's peak memory while doing it.

Starts real PostgreSQL and an S3 server (moto), vcs and the gateway as child
processes (``tests/stack_fixtures.run_stack``), then through HTTP:

* uploads WAV files of several sizes (multipart, as browsers send them) and
  records MB/s and the gateway process's peak resident memory (VmHWM) — the
  upload is streamed to a temporary file while hashed, so the peak should not
  grow with the file size;
* downloads each back, streamed through the gateway (``?redirect=false``), and
  in 1 MiB range requests (seeking);
* times small authenticated JSON requests (a repository read).

Prints a table and writes JSON to bench/results/gateway_io.json.

    python bench/gateway_io.py [--sizes-mb 8,64,256] [--store local|s3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds a queue.py that would shadow the standard library's: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from beatflow.common import localservers  # noqa: E402
from tests.stack_fixtures import run_stack  # noqa: E402


@dataclass
class Servers:
    postgres_url: str
    redis_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str


def wav_stream(size_mb: int, rate: int = 48000, channels: int = 2) -> Iterator[bytes]:
    """A valid 16-bit WAV of about ``size_mb`` MiB, produced in chunks (never whole in this process)."""
    data_len = size_mb * 1024 * 1024
    data_len -= data_len % (2 * channels)
    header = b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    header += b"data" + struct.pack("<I", data_len)
    yield header
    # A repeating ramp: not all zeros, cheap to make.
    block = bytes(range(256)) * 4096  # 1 MiB
    left = data_len
    while left:
        n = min(left, len(block))
        yield block[:n]
        left -= n


def multipart(size_mb: int, boundary: str = "benchboundary") -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.wav"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from wav_stream(size_mb)
    yield f"\r\n--{boundary}--\r\n".encode()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="8,64,256")
    parser.add_argument("--store", choices=["local", "s3"], default="local", help="blob store")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mb.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        pg = localservers.start_postgres(root / "pg", fsync=False)
        s3 = localservers.start_s3(log_dir=root)
        servers = Servers(pg.url, "", s3.url, "testing", "testing-secret")
        extra = {
            "BEATFLOW_MAX_UPLOAD_BYTES": str((max(sizes) + 1) * 1024 * 1024),
            "BEATFLOW_MAX_UPLOAD_DURATION_S": str(24 * 3600),
            "BEATFLOW_LOG_LEVEL": "WARNING",
        }
        if args.store == "local":
            extra |= {"BEATFLOW_BLOB_BACKEND": "local", "BEATFLOW_BLOB_DIR": str(root / "blobs")}
        try:
            with run_stack(servers, root, backends=("vcs",), extra_env=extra) as stack:
                gateway_pid = next(p.proc.pid for p in stack.procs if p.name == "gateway")
                results = run(stack, gateway_pid, sizes, args.requests)
        finally:
            s3.stop()
            pg.stop()

    results["store"] = args.store
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    print(f"\ngateway I/O ({args.store} blob store)")
    print(
        f"{'size MiB':>9} {'upload MB/s':>12} {'download MB/s':>14} {'1MiB ranges/s':>14} {'gateway peak RSS MiB':>21}"
    )
    for row in results["transfers"]:
        print(
            f"{row['size_mb']:>9} {row['upload_mb_s']:>12.1f} {row['download_mb_s']:>14.1f} "
            f"{row['range_reads_s']:>14.1f} {row['peak_rss_mb']:>21.1f}"
        )
    lat = results["json_request_ms"]
    print(f"GET /api/repositories/{{id}}: p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms over {lat['n']} requests")
    out = ROOT / "bench" / "results" / "gateway_io.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def run(stack: Any, gateway_pid: int, sizes: list[int], n_requests: int) -> dict[str, Any]:
    _uid, token = stack.signup("bench")
    auth = {"Authorization": f"Bearer {token}"}
    transfers = []
    with httpx.Client(base_url=stack.base_url, headers=auth, timeout=600) as http:
        baseline = peak_rss_mb(gateway_pid)
        for size in sizes:
            reset_peak(gateway_pid)
            started = time.perf_counter()
            r = http.post(
                "/api/audio/upload",
                content=multipart(size),
                headers={"Content-Type": "multipart/form-data; boundary=benchboundary"},
            )
            upload_s = time.perf_counter() - started
            assert r.status_code == 201, r.text
            up = r.json()
            peak = peak_rss_mb(gateway_pid)
            total = up["size_bytes"]

            started = time.perf_counter()
            got = 0
            with http.stream("GET", up["download_url"], params={"redirect": "false"}) as response:
                assert response.status_code == 200
                for chunk in response.iter_bytes():
                    got += len(chunk)
            download_s = time.perf_counter() - started
            assert got == total

            reads = min(64, total // (1024 * 1024))
            started = time.perf_counter()
            for i in range(reads):
                start = i * 1024 * 1024
                r = http.get(
                    up["download_url"],
                    params={"redirect": "false"},
                    headers={"Range": f"bytes={start}-{start + 1024 * 1024 - 1}"},
                )
                assert r.status_code == 206 and len(r.content) == 1024 * 1024
            ranges_s = time.perf_counter() - started
            transfers.append(
                {
                    "size_mb": size,
                    "upload_mb_s": total / upload_s / 1e6,
                    "download_mb_s": total / download_s / 1e6,
                    "range_reads_s": reads / ranges_s if reads else 0.0,
                    "peak_rss_mb": peak,
                }
            )
        repo = http.post("/api/repositories/create", json={"name": "bench"}).json()["id"]
        times = []
        for _ in range(n_requests):
            started = time.perf_counter()
            r = http.get(f"/api/repositories/{repo}")
            times.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200
    times.sort()
    return {
        "gateway_rss_before_mb": baseline,
        "transfers": transfers,
        "json_request_ms": {
            "n": len(times),
            "p50": statistics.median(times),
            "p95": times[int(0.95 * (len(times) - 1))],
        },
    }


if __name__ == "__main__":
    main()
