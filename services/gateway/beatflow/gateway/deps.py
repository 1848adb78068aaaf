"""Per-process state and the request dependencies that reach it (caller, backends, store)."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Query, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import RedisError

from beatflow.common.blobstore import BlobStore
from beatflow.gateway.backends import Backends
from beatflow.gateway.config import GatewaySettings
from beatflow.gateway.httperrors import ApiError
from beatflow.gateway.passwords import Passwords
from beatflow.gateway.presign import Presigner
from beatflow.gateway.tokens import InvalidToken, Principal, Revocations, TokenSigner


@dataclass
class GatewayState:
    settings: GatewaySettings
    backends: Backends
    store: BlobStore
    signer: TokenSigner
    revocations: Revocations
    presign: Presigner
    passwords: Passwords
    # (user, task) pairs whose outputs were already registered with vcs.
    registered: collections.OrderedDict[tuple[str, str], None] = field(default_factory=collections.OrderedDict)
    register_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def timeout(self) -> float:
        return self.settings.rpc_timeout_s


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def ws_state(websocket: WebSocket) -> GatewayState:
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


async def current_user(
    state: Annotated[GatewayState, Depends(get_state)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await _principal(state, credentials.credentials if credentials else None)


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
State = Annotated[GatewayState, Depends(get_state)]
User = Annotated[Principal, Depends(current_user)]
