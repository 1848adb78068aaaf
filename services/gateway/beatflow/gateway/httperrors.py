"""gRPC status codes from the backends, turned into HTTP answers.

Backends speak in domain terms (NOT_FOUND, PERMISSION_DENIED, ...); the
gateway passes the message on with the matching HTTP status. A backend that is
down is 503, never a 500 with a traceback.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import grpc
import urllib3.exceptions
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from beatflow.common.errors import BeatflowError, dependency_outage

log = logging.getLogger(__name__)

HTTP_FOR_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


RETRY_AFTER_S = 1  # what a client waits before trying again after a 503


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_FOR_CODE.get(code, 502)


def unavailable(detail: str = "a backend service is unavailable; try again shortly") -> JSONResponse:
    """503 with ``Retry-After``: a store or service is away, the request itself was fine."""
    return JSONResponse(
        {"detail": detail, "code": "UNAVAILABLE"}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


class ApiError(Exception):
    """An HTTP error with a JSON body ``{"detail": ..., **extra}``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.extra = extra


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: echoes of client input (even lone surrogates) always encode."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON cannot carry) spelled as strings.

    Python's JSON parser accepts ``NaN`` and ``Infinity`` in request bodies; a
    validation error echoing such an input must still encode, so the client
    gets a 422 and not a 500 with a reset connection.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in err.items() if k != "ctx"} for err in exc.errors()]
        return AsciiJSONResponse({"detail": _finite(jsonable_encoder(errors))}, status_code=422)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _grpc_error(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        status = http_status(exc.code())
        if status >= 500:
            log.warning("%s %s: backend %s: %s", request.method, request.url.path, exc.code().name, exc.details())
        detail = exc.details() or exc.code().name
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return unavailable()
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return JSONResponse({"detail": detail, "code": exc.code().name}, status_code=status, headers=headers)

    @app.exception_handler(BeatflowError)
    async def _domain_error(request: Request, exc: BeatflowError) -> JSONResponse:
        if exc.code == grpc.StatusCode.UNAVAILABLE:
            return unavailable(exc.message)
        return JSONResponse({"detail": exc.message, "code": exc.code.name}, status_code=http_status(exc.code))

    async def _outage(request: Request, exc: Exception) -> JSONResponse:
        outage = dependency_outage(exc)  # the gateway's own stores: the blob store, Redis
        if outage is None:
            raise exc  # a bug: the server's 500
        log.warning("%s %s: %s is unreachable: %s", request.method, request.url.path, outage, exc)
        return unavailable(f"{outage} is unreachable; try again shortly")

    for outage_type in (RedisConnectionError, RedisTimeoutError, urllib3.exceptions.HTTPError, ConnectionError):
        app.add_exception_handler(outage_type, _outage)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, **exc.extra}, status_code=exc.status, headers=exc.headers)
