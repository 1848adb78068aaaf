"""The shared metrics exporter and health probe, against a real gRPC server and a real HTTP scrape."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from beatflow.common import healthcheck, metrics
from beatflow.common.grpcserver import create_grpc_server
from beatflow.common.jobs import JobQueue
from beatflow.common.settings import CommonSettings

HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def sample_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text exposition, or None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


async def scrape(url: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.text


@pytest.fixture(scope="module")
def metrics_url() -> str:
    port = metrics.start_http_server(0, "127.0.0.1")
    return f"http://127.0.0.1:{port}/metrics"


async def test_health_probe_follows_serving_state_and_rpcs_are_counted(metrics_url: str) -> None:
    gs = create_grpc_server(CommonSettings(host="127.0.0.1", port=0), [])
    await gs.start()
    try:
        target = f"127.0.0.1:{gs.port}"
        before = sample_value((await scrape(metrics_url)), "beatflow_rpc_total", method=HEALTH_CHECK, code="OK") or 0.0

        assert await asyncio.to_thread(healthcheck.check_grpc, target) == "NOT_SERVING"
        assert await asyncio.to_thread(healthcheck.main, ["--port", str(gs.port)]) == 1
        await gs.set_serving(True)
        assert await asyncio.to_thread(healthcheck.check_grpc, target) == "SERVING"
        assert await asyncio.to_thread(healthcheck.main, ["--port", str(gs.port)]) == 0

        text = await scrape(metrics_url)
        after = sample_value(text, "beatflow_rpc_total", method=HEALTH_CHECK, code="OK")
        assert after == before + 4
        assert (sample_value(text, "beatflow_rpc_seconds_count", method=HEALTH_CHECK) or 0) >= 4
    finally:
        await gs.stop(0)
    # Nothing listens any more: the probe reports the transport error and fails.
    assert await asyncio.to_thread(healthcheck.check_grpc, target, "", 1.0) == "UNAVAILABLE"


def test_http_probe_reports_status() -> None:
    port = metrics.start_http_server(0, "127.0.0.1")
    assert healthcheck.check_http(f"http://127.0.0.1:{port}/metrics") == "SERVING"
    assert healthcheck.main(["--http", f"http://127.0.0.1:{port}/metrics"]) == 0


def test_job_observations_are_exported(metrics_url: str) -> None:
    metrics.observe_job("exporter-test", "SUCCEEDED", 1.5)
    metrics.observe_job("exporter-test", "FAILED", None)
    text = httpx.get(metrics_url).text
    assert sample_value(text, "beatflow_jobs_total", kind="exporter-test", state="SUCCEEDED") == 1
    assert sample_value(text, "beatflow_jobs_total", kind="exporter-test", state="FAILED") == 1
    assert sample_value(text, "beatflow_job_seconds_count", kind="exporter-test") == 1
    assert sample_value(text, "beatflow_job_seconds_sum", kind="exporter-test") == 1.5


async def test_http_middleware_labels_by_route_template(metrics_url: str) -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    wrapped = metrics.HttpMetricsMiddleware(app)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=wrapped)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/things/a")).status_code == 200
        assert (await client.get("/things/b")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
    text = await scrape(metrics_url)
    route = "/things/{thing_id}"
    assert sample_value(text, "beatflow_http_requests_total", method="GET", route=route, status="200") == 2
    assert (sample_value(text, "beatflow_http_requests_total", method="GET", route="unmatched", status="404") or 0) >= 1
    # Raw paths never become labels.
    assert "/things/a" not in text


async def wait_for_gauge(url: str, kind: str, expected: float, within_s: float = 60.0) -> float | None:
    """Scrape until the sampler has published ``expected`` or ``within_s`` passed; the last value.

    One client for every scrape, and a deadline in time rather than a count of tries: on a busy
    machine each try is slow, and a count of them once added up to the test's whole timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    current = None
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            response = await client.get(url)
            response.raise_for_status()
            current = sample_value(response.text, "beatflow_job_queue_depth", kind=kind)
            if current == expected or loop.time() > deadline:
                return current
            await asyncio.sleep(0.01)


async def test_queue_depth_sampler_follows_a_real_queue(metrics_url: str, redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    queue = JobQueue(client, prefix="sampler-test")
    for n in range(3):
        await queue.submit("sampler-a", {"n": n})
    stop = metrics.start_queue_depth_sampler(queue, ["sampler-a", "sampler-b"], interval_s=0.01)
    try:
        assert await wait_for_gauge(metrics_url, "sampler-a", 3) == 3
        assert await wait_for_gauge(metrics_url, "sampler-b", 0) == 0
        claimed = await queue.claim("sampler-a", "worker-1", count=1, block_ms=100)
        assert len(claimed) == 1
        assert await wait_for_gauge(metrics_url, "sampler-a", 2) == 2
    finally:
        await stop()
        await client.aclose()


def test_gpu_gauges_stay_empty_without_cuda(metrics_url: str) -> None:
    import torch

    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")
        assert metrics.update_gpu_memory() == torch.cuda.device_count()
    else:
        assert metrics.update_gpu_memory() == 0
        assert sample_value(httpx.get(metrics_url).text, "beatflow_gpu_memory_bytes") is None


@pytest.mark.gpu
def test_gpu_memory_is_read_at_scrape_time(metrics_url: str) -> None:
    import torch

    block = torch.empty(64 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    text = httpx.get(metrics_url).text
    allocated = sample_value(text, "beatflow_gpu_memory_bytes", device="cuda:0")
    assert allocated is not None and allocated >= block.numel()
    reserved = sample_value(text, "beatflow_gpu_memory_reserved_bytes", device="cuda:0")
    assert reserved is not None and reserved >= allocated
    total = sample_value(text, "beatflow_gpu_memory_total_bytes", device="cuda:0")
    assert total is not None and total >= reserved
    del block
