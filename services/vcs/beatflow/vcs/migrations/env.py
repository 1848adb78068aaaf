"""Alembic environment: runs on the connection handed over by beatflow.vcs.migrate."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through beatflow.vcs.migrate (python -m beatflow.vcs migrate)")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
