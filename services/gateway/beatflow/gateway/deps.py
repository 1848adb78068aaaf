"""Per-process state and the request dependencies that reach it (caller, backends, store)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from redis.exceptions import RedisError

from beatflow.common.blobstore import BlobStore
from beatflow.gateway.auth_tokens import InvalidToken, Principal, Revocations, TokenSigner
from beatflow.gateway.backend_clients import Backends
from beatflow.gateway.config import GatewaySettings
from beatflow.gateway.httperrors import ApiError
from beatflow.gateway.passwords import Passwords
from beatflow.gateway.presign import Presigner
from beatflow.gateway.signin_throttle import SigninThrottle


@dataclass
class GatewayState:
    settings: GatewaySettings
    backends: Backends
    store: BlobStore
    signer: TokenSigner
    revocations: Revocations
    presign: Presigner
    passwords: Passwords
    throttle: SigninThrottle

    @property
    def timeout(self) -> float:
        return self.settings.rpc_timeout_s


async def get_state(request: Request) -> GatewayState:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hand-off per request
    state: GatewayState = request.app.state.gateway
    return state


async def ws_state(websocket: WebSocket) -> GatewayState:
    state: GatewayState = websocket.app.state.gateway
    return state


_bearer = HTTPBearer(auto_error=False, description="A token from /api/auth/signin or /api/auth/signup")


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_RETRY = {"Retry-After": "1"}


async def _principal(state: GatewayState, token: str | None) -> Principal:
    """The caller: a token signed by a live key, unexpired, and not revoked by a sign-out (checked in Redis)."""
    if not token:
        raise ApiError(401, "sign in first: send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    try:
        claims = state.signer.decode(token)
    except InvalidToken as exc:
        raise ApiError(401, f"invalid token: {exc}", headers=_CHALLENGE) from None
    try:
        return await state.revocations.check(claims)
    except InvalidToken as exc:
        raise ApiError(401, f"invalid token: {exc}", headers=_CHALLENGE) from None
    except RedisError:
        raise ApiError(503, "cannot check the token right now; try again shortly", headers=_RETRY) from None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, read as FastAPI's ``HTTPBearer`` reads it.

    None when the header is missing, empty or of another scheme (``HTTPBearer(auto_error=False)``'s None).
    """
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


async def caller(state: GatewayState, authorization: str | None) -> Principal:
    """The caller of a request with this ``Authorization`` header (401/503 ApiError otherwise)."""
    return await _principal(state, bearer_token(authorization))


class _BearerCaller(HTTPBearer):
    """The caller, from ``Authorization: Bearer``: the security scheme itself is the dependency.

    One dependency with no sub-dependencies (FastAPI solves each one on every request,
    and this one runs on nearly all of them); the OpenAPI shows the same HTTPBearer scheme.
    """

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await caller(request.app.state.gateway, request.headers.get("Authorization"))


current_user = _BearerCaller(auto_error=False, scheme_name="HTTPBearer", description=_bearer.model.description)


async def current_user_or_query_token(
    state: Annotated[GatewayState, Depends(get_state)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None,
        Query(
            max_length=4096,
            description="The bearer token, for clients that cannot send headers (<audio src>, EventSource)",
        ),
    ] = None,
) -> Principal:
    return await _principal(state, credentials.credentials if credentials else access_token)


def idempotency_key(user: Principal, key: str | None, operation: str) -> str:
    """The job queue's idempotency key: the client's key, scoped to the user and the operation.

    Two users (or one user's generate and separate calls) reusing a key never share a task.
    """
    return f"{user.user_id}:{operation}:{key}" if key else ""


IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a request with the same key to get the same task instead of a new one",
    ),
]
_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_cancel_after(value: str | None) -> float | None:
    """Seconds from a ``Cancel-After`` header: plain seconds ("90", "2.5") or a duration ("1h30m", "45s")."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        if not _DURATION_RE.match(text):  # (the header's pattern already refused it)
            raise ApiError(400, "Cancel-After must be seconds or a duration like 1h30m, 5m, 45s") from None
        seconds = sum(float(n) * _UNIT_S[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text))
    if not seconds > 0:
        raise ApiError(400, "Cancel-After must be more than 0 s")
    seconds = min(seconds, 366 * 86400)  # a deadline further out is capped at 366 days
    return seconds


# Not nullable in the schema: a header is text, never JSON null ("" or absent: no deadline).
CancelAfterHeader = Annotated[
    str,
    Header(
        alias="Cancel-After",
        max_length=64,
        # more than zero: a non-zero digit in the seconds, or in one part of a duration
        pattern=(
            r"^$|^[0-9]*[1-9][0-9]*(\.[0-9]+)?$|^[0-9]+\.[0-9]*[1-9][0-9]*$"
            r"|^([0-9]+(\.[0-9]+)?(h|ms|m|s))*([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)(h|ms|m|s)"
            r"([0-9]+(\.[0-9]+)?(h|ms|m|s))*$"
        ),
        description="Cancel the task (reason 'deadline') if not finished by then: seconds or e.g. 1h30m, 5m, 45s "
        "(more than 0; capped at 366 days)",
    ),
]
State = Annotated[GatewayState, Depends(get_state)]
User = Annotated[Principal, Depends(current_user)]
