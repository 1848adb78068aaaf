"""Signed bearer tokens (JWT, rotation, sign-out), token secrets, and Argon2 password hashes."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from beatflow.gateway.auth_tokens import (
    InvalidToken,
    Principal,
    Revocations,
    TokenSigner,
    WeakSecret,
    check_secret,
    key_id,
)
from beatflow.gateway.config import GatewaySettings
from beatflow.gateway.passwords import Passwords

KEY = b"k" * 32
OTHER = b"z" * 32


def test_token_round_trip_and_expiry() -> None:
    signer = TokenSigner(KEY, ttl_s=60)
    token = signer.issue(Principal("u1", "ada"), version=3, now=1000.0)
    assert signer.verify(token, now=1059.0) == Principal("u1", "ada")
    claims = signer.decode(token, now=1059.0)
    assert (claims.version, claims.issued_at, claims.key_id) == (3, 1000, signer.kid)
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, now=1060.0)


def test_token_is_a_standard_jwt_naming_its_key() -> None:
    signer = TokenSigner(KEY, ttl_s=60)
    token = signer.issue(Principal("u1", "ada"))
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": key_id(KEY)}
    assert KEY.decode() not in header["kid"]
    claims = jwt.decode(token, KEY, algorithms=["HS256"], audience="beatflow-api", issuer="beatflow")
    assert claims["sub"] == "u1" and claims["usr"] == "ada" and claims["exp"] - claims["iat"] == 60


def test_forged_and_foreign_tokens_are_refused() -> None:
    signer = TokenSigner(KEY, ttl_s=60)
    other = TokenSigner(OTHER, ttl_s=60)
    token = signer.issue(Principal("u1", "ada"))
    with pytest.raises(InvalidToken, match="unknown signing key"):
        other.verify(token)
    header, payload, sig = token.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    # Signed with another key but claiming this key's id; alg "none"; claims for another user.
    kid_forgery = jwt.encode(
        {"sub": "u2", "usr": "eve", "ver": 0, "iat": 1, "exp": 2**40}, OTHER, headers={"kid": signer.kid}
    )
    none_alg = jwt.encode({"sub": "u2", "usr": "eve", "ver": 0, "iat": 1, "exp": 2**40}, None, algorithm="none")
    for bad in [
        f"{header}.{forged_payload}.{sig}",
        kid_forgery,
        none_alg,
        "bf1.abc",
        "garbage",
        "",
        "a.é.é",
        token + "x",
    ]:
        with pytest.raises(InvalidToken):
            signer.verify(bad)


def test_missing_claims_or_wrong_audience_are_refused() -> None:
    signer = TokenSigner(KEY, ttl_s=60)
    kid = {"kid": signer.kid}
    base = {"sub": "u1", "usr": "ada", "ver": 0, "iat": 1, "exp": 2**40, "iss": "beatflow", "aud": "beatflow-api"}
    assert signer.verify(jwt.encode(base, KEY, headers=kid)) == Principal("u1", "ada")
    for change in [{"aud": "elsewhere"}, {"iss": "someone"}, {"ver": "x"}]:
        with pytest.raises(InvalidToken):
            signer.verify(jwt.encode({**base, **change}, KEY, headers=kid))
    for missing in ["sub", "ver", "exp"]:
        claims = {k: v for k, v in base.items() if k != missing}
        with pytest.raises(InvalidToken):
            signer.verify(jwt.encode(claims, KEY, headers=kid))


def test_rotation_accepts_the_previous_key_for_a_window() -> None:
    old = TokenSigner(OTHER, ttl_s=3600)
    old_token = old.issue(Principal("u1", "ada"), now=1000.0)
    rotated = TokenSigner(KEY, ttl_s=3600, previous=OTHER, previous_until=2000.0)
    assert rotated.verify(old_token, now=1500.0) == Principal("u1", "ada")
    with pytest.raises(InvalidToken, match="retired"):
        rotated.verify(old_token, now=2001.0)
    new_token = rotated.issue(Principal("u1", "ada"), now=1500.0)
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(KEY)
    with pytest.raises(InvalidToken):
        old.verify(new_token, now=1500.0)
    # Without a window the previous key's tokens live until they expire.
    assert TokenSigner(KEY, ttl_s=3600, previous=OTHER).verify(old_token, now=4000.0)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"short", ttl_s=60)


@pytest.mark.parametrize(
    "secret",
    [
        "change-me-to-a-long-random-string",
        "CHANGE_ME_please_0123456789abcdefghij",
        "s" * 64,
        "abababababababababababababababababab",
        "0123456789abcdef",  # 16 characters: too short
        "test-secret-for-metrics-and-more-characters",
        "my-example-secret-key-0123456789abcdef",
    ],
)
def test_placeholder_short_or_repetitive_secrets_are_refused_at_start(secret: str) -> None:
    with pytest.raises(WeakSecret):
        check_secret(secret)
    with pytest.raises(ValidationError, match="BEATFLOW_TOKEN_SECRET"):
        GatewaySettings(token_secret=secret)
    with pytest.raises(ValidationError, match="BEATFLOW_TOKEN_PREVIOUS_SECRET"):
        GatewaySettings(token_secret=secrets.token_hex(32), token_previous_secret=secret)


def test_shipped_placeholder_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The values deploy/ and .env.example ship must not start a gateway."""
    root = Path(__file__).resolve().parents[3]
    for path in (root / "deploy/k8s/base/credentials.env", root / ".env.example"):
        line = next(x for x in path.read_text().splitlines() if x.startswith("BEATFLOW_TOKEN_SECRET="))
        monkeypatch.setenv("BEATFLOW_TOKEN_SECRET", line.split("=", 1)[1])
        with pytest.raises(ValidationError, match="placeholder"):
            GatewaySettings()


def test_random_secrets_are_accepted() -> None:
    for _ in range(20):
        assert GatewaySettings(token_secret=secrets.token_hex(32)).token_secret
        assert GatewaySettings(token_secret=secrets.token_urlsafe(32)).token_secret
    assert GatewaySettings(token_secret="").token_secret == ""  # random per process, with a warning


async def test_sign_out_revokes_earlier_tokens_in_every_replica(redis_url: str) -> None:
    import redis.asyncio as aioredis

    signer = TokenSigner(KEY, ttl_s=60)
    first, second = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)  # two replicas
    try:
        replica_a, replica_b = Revocations(first), Revocations(second)
        user = f"u-{secrets.token_hex(4)}"
        token = signer.issue(Principal(user, "ada"), version=await replica_a.version(user))
        assert await replica_b.check(signer.decode(token)) == Principal(user, "ada")
        await replica_a.revoke_all(user)
        for replica in (replica_a, replica_b):
            with pytest.raises(InvalidToken, match="revoked"):
                await replica.check(signer.decode(token))
        fresh = signer.issue(Principal(user, "ada"), version=await replica_b.version(user))
        assert await replica_b.check(signer.decode(fresh)) == Principal(user, "ada")
        other = signer.issue(Principal(user + "x", "bob"), version=await replica_a.version(user + "x"))
        assert await replica_a.check(signer.decode(other)) == Principal(user + "x", "bob")  # others unaffected
    finally:
        await first.aclose()
        await second.aclose()


def test_a_remembered_token_still_expires_and_its_key_still_retires() -> None:
    signer = TokenSigner(KEY, ttl_s=60, previous=OTHER, previous_until=1030.0)
    old_signer = TokenSigner(OTHER, ttl_s=60)
    token = signer.issue(Principal("u1", "ada"), now=1000.0)
    old = old_signer.issue(Principal("u2", "bob"), now=1000.0)
    for _ in range(2):  # the second decode is answered from the verified set
        assert signer.verify(token, now=1010.0) == Principal("u1", "ada")
        assert signer.verify(old, now=1010.0) == Principal("u2", "bob")
    with pytest.raises(InvalidToken, match="retired key"):
        signer.verify(old, now=1031.0)
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, now=1060.0)
    # a token differing from a verified one in its signature is checked afresh, and refused
    header, payload, sig = token.split(".")
    tampered = f"{header}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(InvalidToken):
        signer.verify(tampered, now=1010.0)


async def test_another_replicas_sign_out_is_honoured_within_the_cache_bound(redis_url: str) -> None:
    import redis.asyncio as aioredis

    signer = TokenSigner(KEY, ttl_s=600)
    now = [0.0]
    first, second = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)
    try:
        replica_a = Revocations(first, cache_s=2.0, clock=lambda: now[0])
        replica_b = Revocations(second, cache_s=2.0, clock=lambda: now[0])
        user = f"u-{secrets.token_hex(4)}"
        token = signer.issue(Principal(user, "ada"), version=await replica_a.version(user))
        for replica in (replica_a, replica_b):  # both now remember version 0
            assert await replica.check(signer.decode(token)) == Principal(user, "ada")
        await replica_a.revoke_all(user)
        with pytest.raises(InvalidToken, match="revoked"):  # the replica that signed out: at once
            await replica_a.check(signer.decode(token))
        now[0] = 1.0
        # B trusts what it read for up to cache_s: the old token still passes there...
        assert await replica_b.check(signer.decode(token)) == Principal(user, "ada")
        # ...and a token issued after the sign-out is never refused for B's older version
        fresh = signer.issue(Principal(user, "ada"), version=await replica_a.version(user))
        assert await replica_b.check(signer.decode(fresh)) == Principal(user, "ada")
        now[0] = 2.0  # cache_s after B's read: B reads the version again
        with pytest.raises(InvalidToken, match="revoked"):
            await replica_b.check(signer.decode(token))
        assert await replica_b.check(signer.decode(fresh)) == Principal(user, "ada")
        # without a cache every check reads Redis: another replica's sign-out counts at once
        uncached = Revocations(second, clock=lambda: now[0])
        assert await uncached.check(signer.decode(fresh)) == Principal(user, "ada")
        await replica_a.revoke_all(user)
        with pytest.raises(InvalidToken, match="revoked"):
            await uncached.check(signer.decode(fresh))
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_sign_out_seen_by_a_replica_outlives_an_older_read(redis_url: str) -> None:
    """A version read before this replica's own sign-out, stored after it, does not undo it."""
    import redis.asyncio as aioredis

    signer = TokenSigner(KEY, ttl_s=600)
    client = aioredis.Redis.from_url(redis_url)
    try:
        replica = Revocations(client, cache_s=60.0, clock=lambda: 0.0)
        user = f"u-{secrets.token_hex(4)}"
        token = signer.issue(Principal(user, "ada"), version=0)
        await replica.revoke_all(user)
        replica._remember(user, 0, 0.0)  # a read that started before the sign-out, finishing after it
        with pytest.raises(InvalidToken, match="revoked"):
            await replica.check(signer.decode(token))
    finally:
        await client.aclose()


def test_password_hash_is_argon2id_and_salted() -> None:
    passwords = Passwords(time_cost=1, memory_kib=8192, parallelism=1)  # cheap, same algorithm
    h1, h2 = passwords.hash("correct horse"), passwords.hash("correct horse")
    assert h1.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert h1 != h2
    assert passwords.verify(h1, "correct horse")
    assert not passwords.verify(h1, "wrong horse")
    assert not passwords.verify(None, "correct horse")
    assert not passwords.verify("not a hash", "correct horse")
    # A stronger profile still verifies old hashes, and says they need a rehash.
    stronger = Passwords(time_cost=2, memory_kib=8192, parallelism=1)
    assert stronger.verify(h1, "correct horse") and stronger.needs_rehash(h1)


def test_default_profile_is_rfc9106_low_memory() -> None:
    assert Passwords().hash("x").startswith("$argon2id$v=19$m=65536,t=3,p=4$")


async def test_requests_finding_a_stale_version_share_one_read(redis_url: str) -> None:
    """Under load many requests find the remembered version stale at once: one Redis read answers them all."""
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    class CountedRedis(aioredis.Redis):  # the real client and server; counts the version reads
        gets = 0

        async def get(self, name: Any) -> Any:
            CountedRedis.gets += 1
            return await super().get(name)

    signer = TokenSigner(KEY, ttl_s=600)
    now = [0.0]
    client = CountedRedis.from_url(redis_url)
    try:
        replica = Revocations(client, cache_s=1.0, clock=lambda: now[0])
        user = f"u-{secrets.token_hex(4)}"
        token = signer.issue(Principal(user, "ada"), version=0)
        results = await asyncio.gather(*(replica.check(signer.decode(token)) for _ in range(50)))
        assert results == [Principal(user, "ada")] * 50
        assert CountedRedis.gets == 1
        now[0] = 1.0  # stale again: one more read, shared
        await asyncio.gather(*(replica.check(signer.decode(token)) for _ in range(50)))
        assert CountedRedis.gets == 2 and not replica._reading
        # a sign-out through this replica while a shared read is in flight still counts at once
        now[0] = 2.0
        checks = [asyncio.ensure_future(replica.check(signer.decode(token))) for _ in range(5)]
        await asyncio.sleep(0)  # the read is sent
        await replica.revoke_all(user)
        late = await asyncio.gather(replica.check(signer.decode(token)), *checks, return_exceptions=True)
        assert isinstance(late[0], InvalidToken)
        assert all(isinstance(r, Principal | InvalidToken) for r in late[1:]), late
        # ...and a read that failed fails each request waiting on it (503 there), then reads afresh
        now[0] = 3.0
        broken = CountedRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        replica.redis = broken
        failed = await asyncio.gather(*(replica.check(signer.decode(token)) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(f, RedisConnectionError) for f in failed), failed
        assert not replica._reading
        await broken.aclose()
    finally:
        await client.aclose()
