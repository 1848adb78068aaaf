"""Signed bearer tokens and Argon2 password hashes."""

from __future__ import annotations

import pytest

from beatflow.gateway.passwords import Passwords
from beatflow.gateway.tokens import InvalidToken, Principal, TokenSigner


def test_token_round_trip_and_expiry() -> None:
    signer = TokenSigner(b"k" * 32, ttl_s=60)
    token = signer.issue(Principal("u1", "ada"), now=1000.0)
    assert signer.verify(token, now=1059.0) == Principal("u1", "ada")
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, now=1060.0)


def test_forged_and_foreign_tokens_are_refused() -> None:
    signer = TokenSigner(b"k" * 32, ttl_s=60)
    other = TokenSigner(b"z" * 32, ttl_s=60)
    token = signer.issue(Principal("u1", "ada"))
    with pytest.raises(InvalidToken):
        other.verify(token)
    payload, sig = token.removeprefix("bf1.").split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for bad in [f"bf1.{forged_payload}.{sig}", "bf1.abc", "garbage", "", "bf1.é.é", token + "x"]:
        with pytest.raises(InvalidToken):
            signer.verify(bad)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"short", ttl_s=60)


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
