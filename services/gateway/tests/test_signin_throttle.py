"""Sign-in throttling against a real Redis: per account, per address, shared by replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from beatflow.gateway.httperrors import ApiError
from beatflow.gateway.signin_throttle import SigninThrottle


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_account_locked_after_its_failures_with_retry_after(client: aioredis.Redis) -> None:
    replica_a = SigninThrottle(client, max_per_account=3, max_per_address=100, window_s=60)
    replica_b = SigninThrottle(client, max_per_account=3, max_per_address=100, window_s=60)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # spread over addresses and replicas
        await replica_a.check("Alice", address)
        await (replica_a if address != "10.0.0.2" else replica_b).failed("Alice", address)
    with pytest.raises(ApiError) as refused:
        await replica_b.check("alice", "10.9.9.9")  # any address, any spelling of the name
    assert refused.value.status == 429
    assert refused.value.headers is not None and 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert "this account" in refused.value.detail
    await replica_a.check("bob", "10.0.0.1")  # other accounts are not affected


async def test_address_locked_after_its_failures_and_success_clears_only_the_account(client: aioredis.Redis) -> None:
    throttle = SigninThrottle(client, max_per_account=3, max_per_address=4, window_s=60)
    for i in range(4):
        await throttle.failed(f"user{i}", "192.0.2.7")
    with pytest.raises(ApiError) as refused:
        await throttle.check("someone-else", "192.0.2.7")
    assert refused.value.status == 429 and "this address" in refused.value.detail
    await throttle.check("someone-else", "192.0.2.8")
    await throttle.failed("carol", "198.51.100.1")
    await throttle.failed("carol", "198.51.100.2")
    await throttle.succeeded("carol")  # the right password: the account's count starts over
    await throttle.failed("carol", "198.51.100.3")
    await throttle.failed("carol", "198.51.100.4")
    await throttle.check("carol", "198.51.100.5")
    await throttle.failed("carol", "198.51.100.5")  # the third since the success: locked
    with pytest.raises(ApiError):
        await throttle.check("carol", "198.51.100.6")


async def test_the_lock_ends_with_its_window(client: aioredis.Redis) -> None:
    throttle = SigninThrottle(client, max_per_account=1, max_per_address=10, window_s=0.2)
    await throttle.failed("dave", "203.0.113.5")
    with pytest.raises(ApiError):
        await throttle.check("dave", "203.0.113.5")
    key = throttle._keys("dave", "203.0.113.5")[0]
    assert 0 < await client.pttl(key) <= 200
    await client.pexpire(key, 1)  # let the window end now rather than sleep through it
    while await client.exists(key):
        pass
    await throttle.check("dave", "203.0.113.5")
