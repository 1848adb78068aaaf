"""Domain errors, one class per gRPC status code.

Services raise these from domain code; the error interceptor in
``beatflow.common.grpcserver`` turns them into the matching status with the
message as details. Code that is not a ``BeatflowError`` becomes INTERNAL with
a generic message (and a logged traceback), so internals never leak.
"""

from __future__ import annotations

import grpc


class BeatflowError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
