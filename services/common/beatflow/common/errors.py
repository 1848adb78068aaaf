"""Domain errors, one class per gRPC status code.

Services raise these from domain code; the error interceptor in
``beatflow.common.grpcserver`` turns them into the matching status with the
message as details. Code that is not a ``BeatflowError`` becomes INTERNAL with
a generic message (and a logged traceback), so internals never leak.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc


class BeatflowError(Exception):
    """``details``: machine-readable facts a caller may act on, sent as the status's trailing
    metadata (ASCII keys and values), e.g. the current head beside a stale-head refusal."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, details: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})


class InvalidArgument(BeatflowError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(BeatflowError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(BeatflowError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(BeatflowError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(BeatflowError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(BeatflowError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(BeatflowError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(BeatflowError):
    """Stored data is not what was written (e.g. a blob fails its hash check)."""

    code = grpc.StatusCode.DATA_LOSS


# Connection-level errors of the stores BeatFlow depends on, by module and class name so that
# this module needs none of their libraries (the gateway has no database driver, say).
_OUTAGE_NAMES = {
    ("redis.exceptions", "ConnectionError"),
    ("redis.exceptions", "TimeoutError"),
    ("redis.exceptions", "BusyLoadingError"),
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("sqlalchemy.exc", "DisconnectionError"),
    ("asyncpg.exceptions", "ConnectionDoesNotExistError"),
    ("asyncpg.exceptions", "CannotConnectNowError"),
    ("asyncpg.exceptions", "ConnectionFailureError"),
    ("asyncpg.exceptions", "AdminShutdownError"),
    ("asyncpg.exceptions", "CrashShutdownError"),
    ("asyncpg.exceptions", "TooManyConnectionsError"),
    ("asyncpg.exceptions._base", "InterfaceError"),
    ("botocore.exceptions", "EndpointConnectionError"),
    ("botocore.exceptions", "ConnectionClosedError"),
    ("botocore.exceptions", "ReadTimeoutError"),
    ("botocore.exceptions", "ConnectTimeoutError"),
    ("urllib3.exceptions", "MaxRetryError"),
    ("urllib3.exceptions", "NewConnectionError"),
    ("urllib3.exceptions", "ProtocolError"),
    ("urllib3.exceptions", "ReadTimeoutError"),
}


def dependency_outage(exc: BaseException) -> str | None:
    """Name the unreachable dependency (database, queue, store) when ``exc`` or its cause failed to connect.

    Such errors are UNAVAILABLE (503 at the gateway, retry later), not INTERNAL: the
    request was fine and nothing was done, the database, queue or store was away.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for cls in type(current).__mro__:
            if (cls.__module__, cls.__name__) in _OUTAGE_NAMES:
                root = cls.__module__.split(".")[0]
                return {"redis": "the job queue (Redis)", "sqlalchemy": "the database", "asyncpg": "the database"}.get(
                    root, "the blob store"
                )
        if isinstance(current, ConnectionError):  # refused, reset, broken pipe
            return "a backend"
        current = current.__cause__ or current.__context__
    return None
