"""Bearer tokens: HS256 JSON Web Tokens (PyJWT) with key ids, key rotation and sign-out.

A token names the user (``sub``, ``usr``), when it was issued and when it
expires (``iat``, ``exp``), who issued it for whom (``iss``, ``aud``), and the
user's token version (``ver``); its header names the signing key (``kid``, a
digest of the key, never the key). Any gateway replica with the same keys checks
it without a database round trip.

* **Rotation:** tokens are signed with the current key; a token signed with
  the previous key is still accepted until ``previous_until`` (then everyone
  holding one signs in again).
* **Sign-out** raises the user's token version in Redis (shared by all
  replicas); a token carrying a lower version is refused from then on: at
  once by the replica that signed the user out, and by the others within
  ``cache_s`` (each replica trusts a version it read for that long, so a
  request costs no Redis round trip for it; 0 reads it on every request).
* **Verified tokens are remembered** (a bounded set per process): the same
  token string again skips the signature check, never the expiry and key
  retirement checks, which are made against the clock on every request.
* **Secrets** shorter than 32 characters, with few distinct characters, or
  that look like a shipped placeholder are refused (:func:`check_secret`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "beatflow"
AUDIENCE = "beatflow-api"
MIN_SECRET_CHARS = 32
MIN_DISTINCT_CHARS = 10
_PLACEHOLDER = re.compile(
    r"change[-_ ]?me|replace[-_ ]?me|placeholder|example|your[-_ ]?secret|^(test|dev)[-_]|secret[-_]?key|password",
    re.IGNORECASE,
)
_VERSION_KEY = "beatflow:auth:token-version:"
_REMEMBERED = 10_000  # verified tokens, and users' token versions, kept per process


class InvalidToken(Exception):
    """The token is malformed, forged, expired or revoked."""


class WeakSecret(ValueError):
    """A token secret that must not be used."""


def check_secret(secret: str, name: str = "BEATFLOW_TOKEN_SECRET") -> str:
    """The secret, or WeakSecret when it is short, repetitive or a known placeholder."""
    if len(secret) < MIN_SECRET_CHARS:
        raise WeakSecret(f"{name} must be at least {MIN_SECRET_CHARS} characters (e.g. `openssl rand -hex 32`)")
    if len(set(secret)) < MIN_DISTINCT_CHARS:
        raise WeakSecret(f"{name} is too repetitive to be a secret (e.g. `openssl rand -hex 32`)")
    if _PLACEHOLDER.search(secret):
        raise WeakSecret(f"{name} looks like a placeholder; set a random one (e.g. `openssl rand -hex 32`)")
    return secret


def key_id(secret: bytes) -> str:
    """A short public name of a key: the first 16 hex digits of SHA-256("beatflow-kid:" + key)."""
    return hashlib.sha256(b"beatflow-kid:" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str


@dataclass(frozen=True)
class Claims:
    principal: Principal
    version: int
    issued_at: int
    key_id: str


class TokenSigner:
    """Issues tokens with the current key; checks them against the current and (for a while) the previous key."""

    def __init__(
        self,
        secret: bytes,
        ttl_s: int,
        *,
        previous: bytes | None = None,
        previous_until: float | None = None,
    ) -> None:
        for key in (secret, previous):
            if key is not None and len(key) < 16:
                raise ValueError("token secret must be at least 16 bytes")
        self._secret = secret
        self.kid = key_id(secret)
        self._keys: dict[str, tuple[bytes, float | None]] = {self.kid: (secret, None)}
        if previous is not None and previous != secret:
            self._keys[key_id(previous)] = (previous, previous_until)
        self.ttl_s = ttl_s
        # token -> (its claims, when it expires): signature and claims already checked
        self._verified: dict[str, tuple[Claims, float]] = {}

    def issue(self, principal: Principal, version: int = 0, now: float | None = None) -> str:
        now = time.time() if now is None else now
        claims = {
            "sub": principal.user_id,
            "usr": principal.username,
            "ver": version,
            "iat": int(now),
            "exp": int(now) + self.ttl_s,
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM, headers={"kid": self.kid})

    def decode(self, token: str, now: float | None = None) -> Claims:
        """The token's claims; InvalidToken unless it is well formed, signed by a live key and unexpired."""
        now = time.time() if now is None else now
        known = self._verified.get(token)
        if known is not None:
            claims_seen, expires_at = known
            until_seen = self._keys[claims_seen.key_id][1]
            if until_seen is not None and now > until_seen:
                raise InvalidToken("signed with a retired key; sign in again")
            if expires_at <= now:
                raise InvalidToken("token expired")
            return claims_seen
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed token") from None
        kid = header.get("kid")
        entry = self._keys.get(kid) if isinstance(kid, str) else None
        if entry is None:
            raise InvalidToken("unknown signing key")
        key, until = entry
        if until is not None and now > until:
            raise InvalidToken("signed with a retired key; sign in again")
        try:
            # Time is checked below against ``now`` (so tests can move the clock); PyJWT checks the rest.
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "usr", "ver", "iat", "exp"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        try:
            user_id, username = str(claims["sub"]), str(claims["usr"])
            version, issued, expires = int(claims["ver"]), int(claims["iat"]), float(claims["exp"])
        except (TypeError, ValueError, OverflowError):
            raise InvalidToken("malformed claims") from None
        if expires <= now:
            raise InvalidToken("token expired")
        verified = Claims(Principal(user_id, username), version, issued, kid)  # type: ignore[arg-type]
        if len(self._verified) >= _REMEMBERED:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (verified, expires)
        return verified

    def verify(self, token: str, now: float | None = None) -> Principal:
        """The signed-in user (signature, key and expiry only; revocation is :class:`Revocations`' part)."""
        return self.decode(token, now).principal


class Revocations:
    """Per-user token versions in Redis: sign-out raises it, and every replica then refuses older tokens.

    ``cache_s``: :meth:`check` trusts a version read less than that long ago
    (by the ``clock``), so another replica's sign-out is honoured here within
    ``cache_s``; this replica's own sign-outs at once. Versions only rise, so a
    remembered one can only let a token through late, never refuse a good one.
    With a cache, one read per user is in flight at a time: the requests that find
    the remembered version stale meanwhile (many, under load) share its answer.
    """

    def __init__(self, redis: Any, cache_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.cache_s = cache_s
        self._clock = clock
        self._seen: dict[str, tuple[int, float]] = {}  # user -> (version, when it was read)
        self._reading: dict[str, asyncio.Future[int]] = {}  # user -> the read in flight

    async def version(self, user_id: str) -> int:
        """The current version, read from Redis (never remembered: new tokens carry it)."""
        raw = await self.redis.get(_VERSION_KEY + user_id)
        return int(raw) if raw is not None else 0

    async def revoke_all(self, user_id: str) -> int:
        """Invalidate every token issued to the user so far; returns the new version."""
        version = int(await self.redis.incr(_VERSION_KEY + user_id))
        if self.cache_s > 0:
            self._remember(user_id, version, self._clock())
        return version

    async def check(self, claims: Claims) -> Principal:
        user_id = claims.principal.user_id
        read_at = self._clock()
        seen = self._seen.get(user_id)
        if seen is not None and read_at - seen[1] < self.cache_s:
            version = seen[0]
        elif self.cache_s > 0:
            reading = self._reading.get(user_id)
            if reading is None:
                reading = asyncio.ensure_future(self._read(user_id, read_at))
                self._reading[user_id] = reading
                reading.add_done_callback(functools.partial(self._read_done, user_id))
            version = await asyncio.shield(reading)
            seen = self._seen.get(user_id)
            if seen is not None and seen[0] > version:  # this replica's sign-out during a shared read
                version = seen[0]
        else:
            version = await self.version(user_id)
        if claims.version < version:
            raise InvalidToken("token revoked (signed out)")
        return claims.principal

    async def _read(self, user_id: str, read_at: float) -> int:
        version = await self.version(user_id)
        self._remember(user_id, version, read_at)
        return version

    def _read_done(self, user_id: str, reading: asyncio.Future[int]) -> None:
        if self._reading.get(user_id) is reading:
            del self._reading[user_id]
        if not reading.cancelled():
            reading.exception()  # each waiter gets it; retrieved here too, in case none is left

    def _remember(self, user_id: str, version: int, read_at: float) -> None:
        seen = self._seen.pop(user_id, None)
        if seen is not None and seen[0] > version:  # a sign-out seen meanwhile stands
            version = seen[0]
        elif len(self._seen) >= _REMEMBERED:
            del self._seen[next(iter(self._seen))]  # the oldest
        self._seen[user_id] = (version, read_at)
