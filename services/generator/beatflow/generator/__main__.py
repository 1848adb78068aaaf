"""``python -m beatflow.generator``: serve generation until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio

from beatflow.common.grpcserver import serve
from beatflow.common.logging import configure_logging
from beatflow.generator.config import GeneratorSettings
from beatflow.generator.server import create_server


async def main() -> None:
    settings = GeneratorSettings()
    configure_logging("generator", settings.log_level, settings.log_json)
    server, _port = await create_server(settings)
    await serve(server, settings, ready=server.ready, service="generator")


if __name__ == "__main__":
    asyncio.run(main())
