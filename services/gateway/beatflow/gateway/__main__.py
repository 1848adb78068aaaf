"""``python -m beatflow.gateway``: serve the HTTP API with uvicorn (port 8000 by default)."""

from __future__ import annotations

import uvicorn

from beatflow.common import metrics
from beatflow.common.logging import configure_logging
from beatflow.gateway.app import create_app
from beatflow.gateway.config import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_json)
    if settings.metrics_port is not None:
        metrics.start_http_server(settings.metrics_port, settings.host)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=int(settings.grace_period_s),
    )


if __name__ == "__main__":
    main()
