"""Fixtures shared by the common package's job-queue tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client on the session's Redis, flushed before the test (``redis_url``)."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
