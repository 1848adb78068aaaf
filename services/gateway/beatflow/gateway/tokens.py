"""Stateless bearer tokens: base64url(claims) "." base64url(HMAC-SHA256(secret, claims)).

A token names the user (``sub``) and expires (``exp``); any gateway replica with
the same secret can check it without a database round trip.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

PREFIX = "bf1."


class InvalidToken(Exception):
    """The token is malformed, forged or expired."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes, ttl_s: int) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must be at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, principal: Principal, now: float | None = None) -> str:
        now = time.time() if now is None else now
        claims = {"sub": principal.user_id, "usr": principal.username, "iat": int(now), "exp": int(now) + self.ttl_s}
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{PREFIX}{payload}.{self._sign(payload)}"

    def verify(self, token: str, now: float | None = None) -> Principal:
        now = time.time() if now is None else now
        if not token.startswith(PREFIX):
            raise InvalidToken("unknown token format")
        try:
            payload, signature = token[len(PREFIX) :].split(".")
        except ValueError:
            raise InvalidToken("malformed token") from None
        try:
            expected = self._sign(payload)
        except UnicodeEncodeError:
            raise InvalidToken("malformed token") from None
        if not signature.isascii() or not hmac.compare_digest(expected, signature):  # compare_digest: ASCII only
            raise InvalidToken("bad signature")
        try:
            claims = json.loads(_unb64(payload))
            user_id, username, exp = str(claims["sub"]), str(claims["usr"]), float(claims["exp"])
        except (ValueError, KeyError, TypeError):
            raise InvalidToken("malformed claims") from None
        if exp <= now:
            raise InvalidToken("token expired")
        return Principal(user_id, username)
