"""``python -m beatflow.separator``: serve Demucs separation and audio analysis over gRPC."""

from __future__ import annotations

import asyncio
import logging
import sys

from beatflow.common.errors import BeatflowError
from beatflow.common.grpcserver import serve
from beatflow.common.logging import configure_logging
from beatflow.separator.config import SeparatorSettings
from beatflow.separator.server import build_app

log = logging.getLogger("beatflow.separator")


async def main() -> int:
    settings = SeparatorSettings()
    configure_logging("separator", settings.log_level, settings.log_json)
    app = await build_app(settings)
    try:
        await serve(app.grpc, settings, ready=app.ready, service="separator")
    except BeatflowError as exc:  # e.g. the model cannot be loaded: say why, stop cleanly, exit non-zero
        log.error("separator cannot start: %s", exc.message)
        await app.grpc.stop(0)
        return 2
    return 0


def run() -> None:
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    run()
