"""Async engine factory (SQLAlchemy 2 + asyncpg)."""

from __future__ import annotations

import functools

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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
        # Short transactions under READ COMMITTED; branch updates are compare-and-swap.
        isolation_level="READ COMMITTED",
    )
