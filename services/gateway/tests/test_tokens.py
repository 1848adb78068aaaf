"""Signed bearer tokens and Argon2 password hashes."""

from __future__ import annotations

import pytest

from beatflow.gateway.passwords import hash_password, verify_password
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
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1.startswith("$argon2id$")
    assert h1 != h2
    assert verify_password(h1, "correct horse")
    assert not verify_password(h1, "wrong horse")
    assert not verify_password(None, "correct horse")
    assert not verify_password("not a hash", "correct horse")
