"""``python -m beatflow.vcs`` serves gRPC (port 50053); ``python -m beatflow.vcs migrate`` upgrades the schema."""

from __future__ import annotations

import argparse
import asyncio

from beatflow.common.grpcserver import serve
from beatflow.common.logging import configure_logging
from beatflow.vcs.config import VcsSettings
from beatflow.vcs.db import make_engine
from beatflow.vcs.migrate import migrate
from beatflow.vcs.server import create_server


async def _serve(settings: VcsSettings) -> None:
    gs, _port = await create_server(settings)
    await serve(gs, settings, service="vcs")


async def _migrate(settings: VcsSettings, revision: str) -> None:
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        rev = await migrate(engine, revision)
        print(f"vcs schema at revision {rev}")
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m beatflow.vcs")
    sub = parser.add_subparsers(dest="command")
    serve_p = sub.add_parser("serve", help="serve gRPC (the default)")
    serve_p.set_defaults(command="serve")
    mig = sub.add_parser("migrate", help="upgrade the database schema and exit")
    mig.add_argument("revision", nargs="?", default="head")
    args = parser.parse_args(argv)
    settings = VcsSettings()
    configure_logging("vcs", settings.log_level, settings.log_json)
    if args.command == "migrate":
        asyncio.run(_migrate(settings, args.revision))
    else:
        asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
