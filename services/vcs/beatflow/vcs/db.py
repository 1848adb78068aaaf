"""Async engine factory (SQLAlchemy 2 + asyncpg), and the hot paths' direct asyncpg calls."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, cast

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from beatflow.common.errors import BeatflowError

# What ``fetch`` runs a statement on: a SQLAlchemy connection, or a pooled asyncpg one (``pooled``).
Conn: TypeAlias = AsyncConnection | asyncpg.Connection


@functools.lru_cache(maxsize=1024)
def sql(statement: str) -> TextClause:
    """``text(statement)``, parsed once: building a clause re-scans the SQL for its parameters
    (most of a millisecond for a long statement), and the hot paths run the same few statements."""
    return text(statement)


def make_engine(database_url: str, *, pool_size: int = 10, max_overflow: int = 40) -> AsyncEngine:
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+asyncpg://" + database_url.removeprefix("postgresql://")
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pre-ping round trip per checkout: a connection found dead is invalidated on its
        # first error, and connections are recycled every half hour.
        pool_recycle=1800,
        # The connection used last is the next one out: its prepared statements (asyncpg's cache,
        # PostgreSQL's plan for each) are the warm ones. First in, first out, every connection the
        # pool grew to under a burst (8 racing writers) took turns afterwards, and a history page
        # went to a connection that had to prepare and plan it again.
        pool_use_lifo=True,
        # Short transactions under READ COMMITTED; branch updates are compare-and-swap.
        isolation_level="READ COMMITTED",
    )


# ``:name`` as text() reads it (not ``::`` casts).
_PARAM = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


@functools.lru_cache(maxsize=256)
def positional(statement: str) -> tuple[str, tuple[str, ...]]:
    """``statement`` with its ``:name`` parameters numbered ``$1``.. for asyncpg, and the names in order."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return _PARAM.sub(number, statement), tuple(names)


class Row:
    """An asyncpg record read by attribute, like a SQLAlchemy row (``row.id``)."""

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


async def fetch(conn: Conn, statement: str, params: Mapping[str, Any]) -> list[Row]:
    """Run ``statement`` (``:name`` parameters) on the connection's own asyncpg connection.

    For the hot paths (a commit, a page of history, a repository's access): asyncpg prepares the
    statement once per connection (its statement cache), and the call skips SQLAlchemy's
    execution layer (about a fifth of a millisecond a statement). A SQLAlchemy connection stays
    SQLAlchemy's (its pool, its transaction if one is open). A PostgreSQL error comes as asyncpg raises it.
    """
    sql, names = positional(statement)
    raw = conn if isinstance(conn, asyncpg.Connection) else (await conn.get_raw_connection()).driver_connection
    records = await raw.fetch(sql, *[params[n] for n in names])  # type: ignore[union-attr]
    return [Row(r) for r in records]


@asynccontextmanager
async def pooled(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection of one of ``engine``'s pooled connections, outside a transaction
    (each statement commits by itself, as a read in autocommit), for a use case that is one
    ``fetch`` on the hot path (a page of history).

    It is checked out of the pool without a SQLAlchemy ``Connection`` around it: no connection
    events, no isolation level set on checkout and reset on return (about 0.1 ms of a page's
    CPU on a 2-core box, out of ~0.18 ms for connect and close). Returned to the pool as any
    connection is; after an error that is neither PostgreSQL's answer nor a refusal of the
    service (a lost connection, a cancelled statement), or once the connection is closed, it is
    closed and dropped instead of reused.
    """
    fairy = await engine.raw_connection()
    raw = cast(asyncpg.Connection, fairy.driver_connection)
    try:
        yield raw
    except BaseException as exc:
        if raw.is_closed() or not isinstance(exc, asyncpg.PostgresError | BeatflowError):
            await greenlet_spawn(fairy.invalidate)
        raise
    finally:
        await greenlet_spawn(fairy.close)
