"""Prometheus metrics shared by every service (the metrics port is opt-in)."""

from __future__ import annotations

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

RPC_TOTAL = Counter("beatflow_rpc_total", "gRPC calls handled", ["method", "code"])
RPC_SECONDS = Histogram("beatflow_rpc_seconds", "gRPC call latency", ["method"])
JOBS_TOTAL = Counter("beatflow_jobs_total", "Jobs finished, by kind and final state", ["kind", "state"])
JOB_SECONDS = Histogram(
    "beatflow_job_seconds",
    "Job run time from claim to finish",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
QUEUE_DEPTH = Gauge("beatflow_job_queue_depth", "Jobs waiting in a queue", ["kind"])
GPU_MEMORY_BYTES = Gauge("beatflow_gpu_memory_bytes", "GPU memory allocated by this process", ["device"])


def observe_rpc(method: str, code: str, seconds: float) -> None:
    RPC_TOTAL.labels(method=method, code=code).inc()
    RPC_SECONDS.labels(method=method).observe(seconds)


def observe_job(kind: str, state: str, seconds: float | None) -> None:
    JOBS_TOTAL.labels(kind=kind, state=state).inc()
    if seconds is not None:
        JOB_SECONDS.labels(kind=kind).observe(seconds)


def start_http_server(port: int, host: str = "0.0.0.0") -> int:
    """Serve /metrics; returns the bound port (``port=0`` picks one)."""
    server, _thread = prometheus_client.start_http_server(port, addr=host)
    return int(server.server_port)
