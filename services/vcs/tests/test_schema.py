"""The migrations build exactly the schema ``beatflow.vcs.schema`` describes."""

from __future__ import annotations

import warnings
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from beatflow.vcs.schema import metadata


def _differences(conn: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True, "include_name": _ours}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expression indexes are skipped by autogenerate (checked below)
        return list(compare_metadata(context, metadata))


def _ours(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (type_ == "table" and name == "alembic_version")


async def test_migrated_schema_equals_the_declared_one(vcs) -> None:
    async with vcs.engine.connect() as conn:
        diff = await conn.run_sync(_differences)
        tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        indexes = await conn.run_sync(lambda c: {i["name"] for i in sa.inspect(c).get_indexes("users")})
    assert diff == [], diff
    assert tables - {"alembic_version"} == set(metadata.tables)
    assert "uq_users_username_lower" in indexes


async def test_a_drift_is_caught(vcs) -> None:
    """The comparison sees a column the migrations do not make (so an empty diff means something)."""
    changed = sa.MetaData()
    for table in metadata.tables.values():
        table.to_metadata(changed)
    sa.Table("blobs", changed, sa.Column("duration_s", sa.Float(53)), extend_existing=True)

    def differences(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _ours})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(compare_metadata(context, changed))

    async with vcs.engine.connect() as conn:
        diff = await conn.run_sync(differences)
    assert any(d[0] == "add_column" and d[3].name == "duration_s" for d in diff), diff
