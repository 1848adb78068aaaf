"""Gateway settings (``BEATFLOW_*`` environment variables)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from beatflow.common.settings import CommonSettings
from beatflow.gateway.auth_tokens import check_secret


class GatewaySettings(CommonSettings):
    """Where the backends are, how tokens are signed, and the limits on uploads."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Processes serving the port (BEATFLOW_GATEWAY_WORKERS): one Python process tops out at one
    # core. Above 1, a supervisor starts them, shares the token secret (a random one when none is
    # set) and serves /metrics on the metrics port summed over them (Prometheus multiprocess mode).
    # Workers share nothing but Redis and the backends, like replicas: a sign-out through one is
    # honoured by the others within ``token_check_cache_s``.
    gateway_workers: Annotated[int, Field(ge=1, le=64)] = 1
    # One log line per request (uvicorn's access log, at INFO): off unless an operator turns it on.
    access_log: bool = False

    # Backend gRPC addresses (host:port).
    generator_addr: str = "127.0.0.1:50051"
    separator_addr: str = "127.0.0.1:50052"
    vcs_addr: str = "127.0.0.1:50053"
    rpc_timeout_s: float = 30.0

    # Bearer tokens: HS256 JWTs signed with this secret. Gateway replicas must
    # share it; empty means a random secret per process (tokens then die with
    # the process — fine for one machine, wrong for a fleet). A short,
    # repetitive or placeholder secret is refused at start.
    token_secret: str = ""
    token_ttl_s: int = 7 * 24 * 3600
    # Rotation: set the old secret here and the new one above; tokens signed
    # with the old one are accepted until ``token_previous_secret_until``
    # (ISO date-time or epoch seconds; unset: until they expire).
    token_previous_secret: str = ""
    token_previous_secret_until: dt.datetime | None = None
    # How long a replica trusts a user's token version it read from Redis: a sign-out
    # through another replica is honoured here within this many seconds (0: every request reads it).
    token_check_cache_s: Annotated[float, Field(ge=0.0, le=60.0)] = 1.0

    # Argon2id cost (RFC 9106 low-memory profile); old hashes keep their own.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4

    # Uploads: refused while streaming once larger than this, and refused
    # before decoding when the header says the audio is longer than this.
    max_upload_bytes: int = 100 * 1024 * 1024
    max_upload_duration_s: float = 600.0
    # Every other request body (JSON, read whole into memory): refused when larger.
    max_json_body_bytes: int = 1024 * 1024

    # Downloads up to this size are verified whole before the first byte is
    # sent (a corrupt blob is a clean 502); longer ones are checked chunk by
    # chunk while streaming and the connection is aborted at a failed chunk.
    verify_before_send_bytes: int = 8 * 1024 * 1024

    # Downloads from an S3 store answer with a redirect to a presigned URL
    # (the client then reads MinIO directly); ``?redirect=false`` streams.
    presign_downloads: bool = True
    presign_expires_s: int = 900
    # The S3 endpoint as clients reach it (e.g. "media.example.com" when the
    # services reach MinIO as "minio:9000"). Presigned URLs are signed for
    # this host; empty: the endpoint the gateway itself uses.
    presign_endpoint: str = ""
    presign_secure: bool | None = None  # default: s3_secure

    cors_origins: list[str] = []

    # Sign-in throttling (counters in Redis at ``redis_url``, shared by replicas): after
    # this many failures within the window, 429 with Retry-After until the window ends.
    signin_max_failures_per_account: int = 5
    signin_max_failures_per_address: int = 20
    signin_window_s: float = 300.0

    @field_validator("token_secret", "token_previous_secret")
    @classmethod
    def _strong_secret(cls, value: str, info: ValidationInfo) -> str:
        name = "BEATFLOW_" + str(info.field_name).upper()
        return check_secret(value, name) if value else value
