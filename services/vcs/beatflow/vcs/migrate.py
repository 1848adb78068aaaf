"""Schema migrations (Alembic), run at service start and by ``python -m beatflow.vcs migrate``.

Replicas starting together serialize on a PostgreSQL advisory lock, so only
one of them upgrades and the others find the schema at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_ID = 0x62667663  # "bfvc"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, revision: str) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
    try:
        command.upgrade(alembic_config(connection), revision)
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def migrate(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Upgrade the schema to ``revision``; returns the revision now current."""
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade, revision)
        await conn.commit()
        return await conn.run_sync(_current)
