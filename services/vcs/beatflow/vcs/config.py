"""vcs settings (``BEATFLOW_*`` environment variables)."""

from __future__ import annotations

from beatflow.common.settings import CommonSettings


class VcsSettings(CommonSettings):
    port: int = 50053
    metrics_port: int | None = 9103

    db_pool_size: int = 10
    db_max_overflow: int = 40
    # Run Alembic to head at start (replicas serialize on an advisory lock).
    # False: a separate job migrates; the service waits until the schema is at head.
    migrate_on_start: bool = True
    schema_wait_s: float = 300.0

    # Garbage collection: blobs unreferenced by any commit and older than this may be deleted.
    gc_grace_period_s: float = 24 * 3600.0
    # False: GarbageCollect only reports (the caller deletes from the store).
    gc_delete_from_store: bool = True
