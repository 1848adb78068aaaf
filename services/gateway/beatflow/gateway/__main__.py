"""``python -m beatflow.gateway``: serve the HTTP API with uvicorn (port 8000 by default).

With ``BEATFLOW_GATEWAY_WORKERS`` above 1, this process is uvicorn's supervisor: it
binds the port, starts that many worker processes (each builds the app through
:func:`worker_app`), restarts any that dies, and serves the metrics port with the
workers' metrics summed (Prometheus multiprocess mode, a fresh directory per start).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from typing import Any

import uvicorn
from fastapi import FastAPI

from beatflow.common import metrics
from beatflow.common.logging import configure_logging
from beatflow.gateway.app import create_app
from beatflow.gateway.config import GatewaySettings

log = logging.getLogger(__name__)


def worker_app() -> FastAPI:
    """The app of one worker process (a fresh interpreter: settings and logging from the environment)."""
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_json)
    return create_app(settings)


def _serve(settings: GatewaySettings, app: FastAPI | str, **workers: Any) -> None:
    """uvicorn on the configured address, with the project's logging and graceful shutdown."""
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=settings.access_log,
        proxy_headers=True,
        timeout_graceful_shutdown=int(settings.grace_period_s),
        **workers,
    )


def _serve_workers(settings: GatewaySettings) -> None:
    if not settings.token_secret:
        # one secret for all workers, or a token signed by one is refused by the others
        log.warning("BEATFLOW_TOKEN_SECRET is not set: tokens are signed with a random secret for this run")
        os.environ["BEATFLOW_TOKEN_SECRET"] = secrets.token_hex(32)
    # read by prometheus_client when a worker imports it: each worker writes its values there
    metrics_dir = tempfile.mkdtemp(prefix="beatflow-gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        if settings.metrics_port is not None:
            metrics.start_http_server(settings.metrics_port, settings.host, multiprocess_dir=metrics_dir)
        log.info("gateway: %d worker processes on port %d", settings.gateway_workers, settings.port)
        _serve(settings, "beatflow.gateway.__main__:worker_app", factory=True, workers=settings.gateway_workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_json)
    if settings.gateway_workers > 1:
        _serve_workers(settings)
        return
    if settings.metrics_port is not None:
        metrics.start_http_server(settings.metrics_port, settings.host)
    _serve(settings, create_app(settings))


if __name__ == "__main__":
    main()
