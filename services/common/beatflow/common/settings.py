"""Settings shared by every service, read from ``BEATFLOW_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Base for each service's settings; subclasses add their own fields."""

    model_config = SettingsConfigDict(env_prefix="BEATFLOW_", env_file=None, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 0  # 0 picks a free port (tests); services set their own default
    metrics_port: int | None = None  # Prometheus exposition; None disables
    log_level: str = "INFO"
    log_json: bool = True
    grace_period_s: float = 10.0  # drain time on shutdown
    stop_timeout_s: float = 10.0  # past the grace period: each stop step's bound; the process exits after 2x
    health_outage_s: float = 15.0  # a dependency (Redis, PostgreSQL) away this long: health NOT_SERVING

    # Internal gRPC over (m)TLS: PEM paths. Cert + key: serve TLS (and present
    # them as a client); CA: verify peers, and on a server require client
    # certificates it signed. Unset: plaintext (the embedded stack on loopback).
    grpc_tls_cert: Path | None = None
    grpc_tls_key: Path | None = None
    grpc_tls_ca: Path | None = None
    grpc_tls_server_name: str = ""  # the name to verify in server certificates (default: the host dialled)

    # vcs, where the services that complete jobs register their outputs to the job's owner
    # (host:port; empty: not registered). The gateway calls it for everything else.
    vcs_addr: str = ""

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/beatflow"

    # Blob store: "local" (a directory) or "s3" (MinIO or any S3 server).
    blob_backend: str = "local"
    blob_dir: Path = Path(".data/blobs")
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"
    s3_bucket: str = "beatflow"
    s3_secure: bool = False
    s3_region: str = "us-east-1"

    # Job queue
    job_retry_limit: int = 3
    job_heartbeat_timeout_s: float = 30.0
    job_retention_s: float = 7 * 24 * 3600.0
    # A failed attempt is retried after about backoff * 2**(retry-1) s (half of it random), capped.
    job_retry_backoff_s: float = 2.0
    job_retry_backoff_max_s: float = 600.0
    # Webhooks: retried with backoff (capped at max_delay) for max_age, then dead-lettered.
    job_webhook_backoff_s: float = 5.0
    job_webhook_max_delay_s: float = 3600.0
    job_webhook_max_age_s: float = 26 * 3600.0
    # Allow webhook targets on loopback, link-local and private networks (tests, closed networks).
    job_webhook_allow_private_targets: bool = False
