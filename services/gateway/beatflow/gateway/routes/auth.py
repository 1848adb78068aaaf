"""Sign-up, sign-in and sign-out: Argon2id password hashes kept by vcs, signed bearer tokens (JWT) out."""

from __future__ import annotations

import grpc
from fastapi import APIRouter, Request, Response
from redis.exceptions import RedisError

from beatflow.gateway import convert, schemas
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.deps import State, User
from beatflow.gateway.httperrors import ApiError
from beatflow.v1 import vcs_pb2

router = APIRouter(prefix="/api/auth", tags=["auth"])

_BAD_CREDENTIALS = "wrong username or password"


async def _token(state: State, user: vcs_pb2.User) -> schemas.TokenOut:
    try:
        version = await state.revocations.version(user.id)
    except RedisError:
        raise ApiError(503, "cannot issue a token right now; try again shortly", headers={"Retry-After": "1"}) from None
    token = state.signer.issue(Principal(user.id, user.username), version=version)
    return schemas.TokenOut(access_token=token, expires_in=state.signer.ttl_s, user=convert.user(user))


@router.post(
    "/signup",
    status_code=201,
    responses={409: {"description": "The username is taken"}},
    summary="Create an account and get a bearer token",
)
async def signup(body: schemas.Credentials, state: State) -> schemas.TokenOut:
    password_hash = await state.passwords.hash_async(body.password)
    user = await state.backends.vcs.CreateUser(
        vcs_pb2.CreateUserRequest(username=body.username, password_hash=password_hash), timeout=state.timeout
    )
    return await _token(state, user)


@router.post(
    "/signin",
    responses={
        401: {"description": "Wrong username or password"},
        429: {"description": "Too many failed sign-ins for the account or from the address; see Retry-After"},
        503: {"description": "A backend is unavailable; see Retry-After"},
    },
    summary="Get a bearer token",
)
async def signin(body: schemas.Credentials, request: Request, state: State) -> schemas.TokenOut:
    address = request.client.host if request.client else ""
    await state.throttle.check(body.username, address)
    try:
        creds = await state.backends.vcs.GetUserCredentials(
            vcs_pb2.GetUserRequest(username=body.username), timeout=state.timeout
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        await state.passwords.verify_async(None, body.password)  # same cost as a wrong password
        await state.throttle.failed(body.username, address)
        raise ApiError(401, _BAD_CREDENTIALS) from None
    if not await state.passwords.verify_async(creds.password_hash, body.password):
        await state.throttle.failed(body.username, address)
        raise ApiError(401, _BAD_CREDENTIALS)
    await state.throttle.succeeded(body.username)
    return await _token(state, creds.user)


@router.get("/me", responses={401: {"description": "Not signed in"}}, summary="The signed-in user")
async def me(user: User, state: State) -> schemas.UserOut:
    creds = await state.backends.vcs.GetUserCredentials(
        vcs_pb2.GetUserRequest(user_id=user.user_id), timeout=state.timeout
    )
    return convert.user(creds.user)


@router.post(
    "/signout",
    status_code=204,
    response_class=Response,
    responses={401: {"description": "Not signed in"}, 503: {"description": "Revocation store unavailable"}},
    summary="Sign out everywhere: every token issued to the caller so far stops working",
)
async def signout(user: User, state: State) -> Response:
    try:
        await state.revocations.revoke_all(user.user_id)
    except RedisError:
        raise ApiError(503, "cannot sign out right now; try again shortly", headers={"Retry-After": "1"}) from None
    return Response(status_code=204)
