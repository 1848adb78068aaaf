"""The ``beatflow`` client: ``status`` on a big folder of stems, and commit (upload) throughput.

Builds a working folder of N WAV stems totalling --size-mb (default 50 stems,
2 GiB), then times ``beatflow status`` twice through the installed executable:
the first run hashes every file, the second finds each hash in the cache
(keyed on size and mtime) and reads no audio. Then starts vcs and the gateway
on real PostgreSQL and an S3 server (``tests/stack_fixtures.run_stack``),
commits the first --upload-stems stems with ``beatflow commit`` (ask by hash,
stream each missing blob, commit), and reports upload MB/s; a second commit of
the same files with one changed shows that only that one is sent.

Prints a table and writes JSON to bench/results/cli.json.

    python bench/cli.py [--stems 50] [--size-mb 2048] [--upload-stems 5] [--store local|s3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds a queue.py that would shadow the standard library's: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from beatflow.common import localservers  # noqa: E402
from tests.stack_fixtures import run_stack  # noqa: E402

BEATFLOW = Path(sys.executable).parent / "beatflow"
MIB = 1024 * 1024


class Servers:
    def __init__(self, postgres_url: str, s3_endpoint: str) -> None:
        self.postgres_url = postgres_url
        self.redis_url = ""
        self.s3_endpoint = s3_endpoint
        self.s3_access_key = "testing"
        self.s3_secret_key = "testing-secret"


def write_wav(path: Path, size_bytes: int, seed: int, rate: int = 48000, channels: int = 2) -> None:
    """A valid 16-bit WAV of about ``size_bytes``, its samples different per seed (distinct hashes)."""
    data_len = max(4, size_bytes - 44)
    data_len -= data_len % (2 * channels)
    header = b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    header += b"data" + struct.pack("<I", data_len)
    block = bytes((i * (seed + 1) + seed) % 256 for i in range(256)) * 4096  # 1 MiB
    with open(path, "wb") as fh:
        fh.write(header)
        left = data_len
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def beatflow(env: dict[str, str], cwd: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([str(BEATFLOW), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"beatflow {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stems", type=int, default=50)
    parser.add_argument("--size-mb", type=int, default=2048, help="total size of the folder")
    parser.add_argument("--upload-stems", type=int, default=5, help="how many of the stems to commit")
    parser.add_argument("--store", choices=["local", "s3"], default="local", help="blob store")
    args = parser.parse_args()
    if not BEATFLOW.exists():
        raise SystemExit(f"{BEATFLOW} is missing: pip install -e clients/cli")
    per_stem = args.size_mb * MIB // args.stems
    results: dict[str, Any] = {"stems": args.stems, "size_mb": args.size_mb, "store": args.store}

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        folder = root / "song"
        (folder / ".beatflow").mkdir(parents=True)
        started = time.perf_counter()
        for i in range(args.stems):
            write_wav(folder / f"stem{i:02d}.wav", per_stem, i)
        results["write_s"] = time.perf_counter() - started
        offline = {"server": "http://127.0.0.1:9", "repo_id": "bench", "repo_name": "bench", "branch": "main"}
        (folder / ".beatflow" / "state.json").write_text(json.dumps(offline))
        env = {**os.environ, "BEATFLOW_CONFIG_DIR": str(root / "config")}
        results["start_s"], _ = beatflow(env, folder, "--version")  # the process start status cannot beat
        results["status_first_s"], _ = beatflow(env, folder, "status", "--json")
        results["status_cached_s"], out = beatflow(env, folder, "status", "--json")
        assert len(json.loads(out)["new"]) == args.stems

        pg = localservers.start_postgres(root / "pg", fsync=False)
        s3 = localservers.start_s3(log_dir=root)
        extra = {
            "BEATFLOW_MAX_UPLOAD_BYTES": str(per_stem + MIB),
            "BEATFLOW_MAX_UPLOAD_DURATION_S": str(24 * 3600),
            "BEATFLOW_LOG_LEVEL": "WARNING",
        }
        if args.store == "local":
            extra |= {"BEATFLOW_BLOB_BACKEND": "local", "BEATFLOW_BLOB_DIR": str(root / "blobs")}
        try:
            with run_stack(Servers(pg.url, s3.url), root, backends=("vcs",), extra_env=extra) as stack:
                results |= commit_throughput(stack, root, folder, args.upload_stems, per_stem)
        finally:
            s3.stop()
            pg.stop()

    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    print(f"\nbeatflow CLI ({args.stems} stems, {args.size_mb} MiB, {args.store} blob store)")
    print(f"{'measure':<44} {'value':>12}")
    print(f"{'process start alone (beatflow --version)':<44} {results['start_s']:>10.3f} s")
    print(f"{'status, first run (hashes every file)':<44} {results['status_first_s']:>10.2f} s")
    print(f"{'status, second run (hashes cached)':<44} {results['status_cached_s']:>10.3f} s")
    print(
        f"{'commit, ' + str(results['upload_stems']) + ' new stems: upload MB/s':<44} {results['upload_mb_s']:>12.1f}"
    )
    print(f"{'commit, one stem changed: blobs uploaded':<44} {results['second_commit_uploaded']:>12d}")
    print(f"{'commit, one stem changed: seconds':<44} {results['second_commit_s']:>10.2f} s")
    out_path = ROOT / "bench" / "results" / "cli.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2))
    print(f"wrote {out_path}")


def commit_throughput(stack: Any, root: Path, source: Path, n: int, per_stem: int) -> dict[str, Any]:
    _uid, token = stack.signup("bench")
    env = {**os.environ, "BEATFLOW_SERVER": stack.base_url, "BEATFLOW_TOKEN": token}
    work = root / "upload"
    work.mkdir()
    beatflow(env, work, "init", "bench-upload")
    for path in sorted(source.glob("*.wav"))[:n]:
        os.link(path, work / path.name)
    beatflow(env, work, "status")  # hash first: the commit below times the transfer, not the hashing
    elapsed, out = beatflow(env, work, "commit", "-m", "bench", "--json")
    uploaded = len(json.loads(out)["uploaded"])
    changed = sorted(work.glob("*.wav"))[0]
    changed.unlink()
    write_wav(changed, per_stem, 999)
    again, out = beatflow(env, work, "commit", "-m", "one changed", "--json")
    return {
        "upload_stems": uploaded,
        "upload_mb_s": uploaded * per_stem / elapsed / 1e6,
        "commit_s": elapsed,
        "second_commit_uploaded": len(json.loads(out)["uploaded"]),
        "second_commit_s": again,
    }


if __name__ == "__main__":
    main()
