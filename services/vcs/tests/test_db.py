"""db.pooled: a pooled asyncpg connection without a SQLAlchemy Connection around it, on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from beatflow.common.errors import InvalidArgument
from beatflow.vcs import db
from beatflow.vcs.db import make_engine

PID = "SELECT pg_backend_pid() AS pid"


async def test_pooled_reuses_a_sound_connection_and_drops_a_lost_or_cancelled_one(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with asyncio.timeout(60):
            async with db.pooled(engine) as raw:
                first = (await db.fetch(raw, PID, {}))[0].pid
                assert not raw.is_in_transaction()  # each statement commits by itself
            # PostgreSQL's answer to a statement, or the service's refusal: the connection is kept
            with pytest.raises(asyncpg.DivisionByZeroError):
                async with db.pooled(engine) as raw:
                    await raw.fetch("SELECT 1 / 0")
            with pytest.raises(InvalidArgument):
                async with db.pooled(engine) as raw:
                    raise InvalidArgument("refused")
            async with db.pooled(engine) as raw:
                assert (await db.fetch(raw, PID, {}))[0].pid == first
            # the server ends the connection (an error PostgreSQL sends): it is closed, not reused
            with pytest.raises(asyncpg.PostgresError):
                async with db.pooled(engine) as raw:
                    await raw.fetch("SELECT pg_terminate_backend(pg_backend_pid())")
            async with db.pooled(engine) as raw:
                second = (await db.fetch(raw, PID, {}))[0].pid
            assert second != first
            # a statement cancelled mid-way: the connection is dropped, the pool (of one) still serves
            task = asyncio.create_task(_sleep_on(engine))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with db.pooled(engine) as raw:
                third = (await db.fetch(raw, PID, {}))[0].pid
            assert third not in (first, second)
            # the SQLAlchemy path shares the same pool and connection
            async with engine.connect() as conn:
                assert (await db.fetch(conn, PID, {}))[0].pid == third
    finally:
        await engine.dispose()


async def _sleep_on(engine: AsyncEngine) -> None:
    async with db.pooled(engine) as raw:
        await raw.fetch("SELECT pg_sleep(5)")
