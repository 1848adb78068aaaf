"""Prometheus metrics shared by every service (the metrics port is opt-in).

What is measured, and who feeds it:

* ``beatflow_rpc_total`` / ``beatflow_rpc_seconds``: every gRPC call, from the
  shared interceptor (:func:`observe_rpc`).
* ``beatflow_http_requests_total`` / ``beatflow_http_request_seconds``: every
  HTTP request of the gateway, from :class:`HttpMetricsMiddleware`.
* ``beatflow_jobs_total`` / ``beatflow_job_seconds``: finished jobs by kind and
  final state, from the job queue (:func:`observe_job`).
* ``beatflow_job_queue_depth``: jobs waiting per kind, refreshed by
  :func:`start_queue_depth_sampler` in every service that runs workers (every
  replica reports the same number: aggregate with ``max by (kind)``).
* ``beatflow_gpu_memory_bytes`` / ``_reserved_bytes`` / ``_total_bytes``: CUDA
  memory held by this process and each device's size, read at scrape time when the process has
  initialised CUDA (services without torch never import it for this).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

import prometheus_client
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from beatflow.common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RPC_TOTAL = Counter("beatflow_rpc_total", "gRPC calls handled", ["method", "code"])
RPC_SECONDS = Histogram("beatflow_rpc_seconds", "gRPC call latency", ["method"])
HTTP_TOTAL = Counter("beatflow_http_requests_total", "HTTP requests handled", ["method", "route", "status"])
HTTP_SECONDS = Histogram("beatflow_http_request_seconds", "HTTP request latency", ["method", "route"])
JOBS_TOTAL = Counter("beatflow_jobs_total", "Jobs finished, by kind and final state", ["kind", "state"])
JOB_SECONDS = Histogram(
    "beatflow_job_seconds",
    "Job run time from claim to finish",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
QUEUE_DEPTH = Gauge("beatflow_job_queue_depth", "Jobs waiting in a queue", ["kind"])

# Not registered directly: _ScrapeRefresh reads CUDA's counters, then yields these.
GPU_MEMORY_BYTES = Gauge("beatflow_gpu_memory_bytes", "GPU memory allocated by this process", ["device"], registry=None)
GPU_MEMORY_RESERVED_BYTES = Gauge(
    "beatflow_gpu_memory_reserved_bytes",
    "GPU memory reserved by this process's caching allocator",
    ["device"],
    registry=None,
)
GPU_MEMORY_TOTAL_BYTES = Gauge(
    "beatflow_gpu_memory_total_bytes", "Memory of each GPU this process uses", ["device"], registry=None
)
GPU_GAUGES = (GPU_MEMORY_BYTES, GPU_MEMORY_RESERVED_BYTES, GPU_MEMORY_TOTAL_BYTES)


class _Children:
    """Counter and histogram children by label values, each looked up once.

    ``labels()`` checks and joins its arguments on every call: two of them were 4 us of the
    7 us an observation took, on every gRPC call and every HTTP request. Bounded, since some
    label values come from clients (HTTP methods): past ``limit`` keys, children are looked up
    each time.
    """

    def __init__(self, make: Callable[..., tuple[Any, Any]], limit: int = 4096) -> None:
        self._make = make
        self._limit = limit
        self._cache: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def get(self, *key: Any) -> tuple[Any, Any]:
        children = self._cache.get(key)
        if children is None:
            children = self._make(*key)
            if len(self._cache) < self._limit:
                self._cache[key] = children
        return children


_RPC_CHILDREN = _Children(
    lambda method, code: (RPC_TOTAL.labels(method=method, code=code), RPC_SECONDS.labels(method=method))
)
_HTTP_CHILDREN = _Children(
    lambda method, route, status: (
        HTTP_TOTAL.labels(method=method, route=route, status=str(status)),
        HTTP_SECONDS.labels(method=method, route=route),
    )
)


def observe_rpc(method: str, code: str, seconds: float) -> None:
    total, latency = _RPC_CHILDREN.get(method, code)
    total.inc()
    latency.observe(seconds)


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    total, latency = _HTTP_CHILDREN.get(method, route, status)
    total.inc()
    latency.observe(seconds)


def observe_job(kind: str, state: str, seconds: float | None) -> None:
    JOBS_TOTAL.labels(kind=kind, state=state).inc()
    if seconds is not None:
        JOB_SECONDS.labels(kind=kind).observe(seconds)


def update_gpu_memory() -> int:
    """Set the GPU gauges from torch's allocator; returns how many devices were read.

    Reads nothing (and imports nothing) unless this process has already
    imported torch and initialised CUDA, so the vcs and gateway never pay for it.
    """
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return 0
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return 0
        count = int(torch.cuda.device_count())
        for index in range(count):
            device = f"cuda:{index}"
            GPU_MEMORY_BYTES.labels(device=device).set(torch.cuda.memory_allocated(index))
            GPU_MEMORY_RESERVED_BYTES.labels(device=device).set(torch.cuda.memory_reserved(index))
            GPU_MEMORY_TOTAL_BYTES.labels(device=device).set(torch.cuda.get_device_properties(index).total_memory)
    except Exception:
        log.warning("could not read GPU memory", exc_info=True)
        return 0
    return count


class _ScrapeRefresh(Collector):
    """Runs ``refresh`` at every scrape, then yields the gauges it updated."""

    def __init__(self, refresh: Callable[[], object], gauges: Sequence[Gauge]) -> None:
        self._refresh = refresh
        self._gauges = gauges

    def describe(self) -> Iterable[Metric]:
        for gauge in self._gauges:
            yield from gauge.describe()

    def collect(self) -> Iterable[Metric]:
        self._refresh()
        for gauge in self._gauges:
            yield from gauge.collect()


REGISTRY.register(_ScrapeRefresh(update_gpu_memory, GPU_GAUGES))


class QueueWithDepth(Protocol):
    async def depth(self, kind: str) -> int: ...


async def sample_queue_depth(queue: QueueWithDepth, kinds: Sequence[str]) -> None:
    """Read the waiting-job count of each kind once into ``beatflow_job_queue_depth``."""
    for kind in kinds:
        QUEUE_DEPTH.labels(kind=kind).set(await queue.depth(kind))


async def _sample_forever(queue: QueueWithDepth, kinds: Sequence[str], interval_s: float) -> None:
    while True:
        try:
            await sample_queue_depth(queue, kinds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("queue depth sample failed", exc_info=True)
        await asyncio.sleep(interval_s)


def start_queue_depth_sampler(
    queue: QueueWithDepth, kinds: Sequence[str], *, interval_s: float = 5.0
) -> Callable[[], Awaitable[None]]:
    """Sample queue depth every ``interval_s`` in the running loop.

    Returns an async ``stop`` function, shaped for ``GrpcServer.on_stop``.
    """
    task = asyncio.get_running_loop().create_task(
        _sample_forever(queue, list(kinds), interval_s), name="queue-depth-sampler"
    )

    async def stop() -> None:
        await cancel_and_wait(task)

    return stop


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class HttpMetricsMiddleware:
    """Pure ASGI middleware counting HTTP requests by route template (not raw path).

    The route label is the matched route's path template (FastAPI puts the route
    in the scope), or ``unmatched``, so label cardinality stays bounded.

    ``response_headers``: set on every HTTP response (replacing any the app set under
    the same names), in this layer's one wrapper of ``send``: each pure-ASGI layer costs
    every request a call and a closure, so the gateway adds its fixed headers here.
    """

    def __init__(self, app: ASGIApp, response_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.app = app
        self.response_headers = list(response_headers)
        self._replaced = {name.lower() for name, _ in self.response_headers}

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        extra = self.response_headers

        async def send_and_record(message: Any) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message["status"])
                if extra:
                    message = {**message, "headers": with_headers(message.get("headers", ()), extra, self._replaced)}
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            observe_http(scope.get("method", "GET"), template, status, time.perf_counter() - started)


def with_headers(
    headers: Iterable[tuple[bytes, bytes]], extra: Sequence[tuple[bytes, bytes]], names: set[bytes]
) -> list[tuple[bytes, bytes]]:
    """``headers`` without those named in ``names`` (lower case), then ``extra``."""
    out = [(k, v) for k, v in headers if k.lower() not in names]
    out.extend(extra)
    return out


def start_http_server(port: int, host: str = "0.0.0.0", *, multiprocess_dir: str | None = None) -> int:
    """Serve /metrics; returns the bound port (``port=0`` picks one).

    ``multiprocess_dir``: serve the metrics that worker processes write there (their
    ``PROMETHEUS_MULTIPROC_DIR``), summed, instead of this process's own.
    """
    registry = REGISTRY
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    server, _thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
    return int(server.server_port)
