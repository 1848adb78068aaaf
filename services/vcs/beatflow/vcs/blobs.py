"""Blob reference tracking, read permission and garbage collection.

``blobs`` holds one row per audio blob the service knows (registered uploads,
and every blob a commit names). Commits and the collector serialize on those
rows: a commit share-locks the rows of the new blobs it references, the
collector update-locks its candidates, re-checks references under the lock,
tombstones (``deleted_at``) what it deletes and deletes the bytes before it
commits. A commit naming a tombstoned blob is refused (upload it again: a new
registration clears the tombstone), so no commit ever points at deleted audio.

The collector deletes from the blob store itself (``make_blob_store``) unless
asked for a dry run; the caller supplies the candidates (e.g. the store's
listing), with the store's creation time for blobs never registered here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import InvalidArgument, PermissionDenied
from beatflow.vcs.access import READABLE, require_user
from beatflow.vcs.model import GcResult
from beatflow.vcs.names import check_blob_key

_REFERENCED = """
    EXISTS (SELECT 1 FROM commit_stems s WHERE s.blob_key = k)
 OR EXISTS (SELECT 1 FROM commits c WHERE c.mixdown_blob = k)
"""
_KNOWN = "(EXISTS (SELECT 1 FROM blobs b WHERE b.key = k) OR " + _REFERENCED + ")"
_READABLE_BY_ACTOR = f"""
    EXISTS (SELECT 1 FROM blobs b WHERE b.key = k AND b.uploader_id = :actor)
 OR EXISTS (SELECT 1 FROM blob_owners o WHERE o.key = k AND o.user_id = :actor)
 OR EXISTS (SELECT 1 FROM commit_stems s JOIN commits c ON c.id = s.commit_id
            JOIN repo_commits rc ON rc.commit_seq = c.seq
            JOIN repositories r ON r.seq = rc.repo_seq WHERE s.blob_key = k AND {READABLE})
 OR EXISTS (SELECT 1 FROM commits c JOIN repo_commits rc ON rc.commit_seq = c.seq
            JOIN repositories r ON r.seq = rc.repo_seq WHERE c.mixdown_blob = k AND {READABLE})
"""


async def register_blob(conn: AsyncConnection, actor: str, key: str, content_type: str, size_bytes: int) -> None:
    """Record an upload and its uploader; a re-upload of collected bytes clears the tombstone."""
    await require_user(conn, actor)
    check_blob_key(key)
    if size_bytes < 0:
        raise InvalidArgument("size_bytes must not be negative")
    await conn.execute(
        text(
            "INSERT INTO blobs (key, uploader_id, content_type, size_bytes) VALUES (:k, :u, :t, :s) "
            "ON CONFLICT (key) DO UPDATE SET deleted_at = NULL, "
            "uploader_id = COALESCE(blobs.uploader_id, EXCLUDED.uploader_id), "
            "created_at = CASE WHEN blobs.deleted_at IS NULL THEN blobs.created_at ELSE now() END"
        ),
        {"k": key, "u": actor, "t": content_type or "application/octet-stream", "s": size_bytes},
    )
    await conn.execute(
        text("INSERT INTO blob_owners (key, user_id) VALUES (:k, :u) ON CONFLICT DO NOTHING"), {"k": key, "u": actor}
    )


async def can_read_blob(conn: AsyncConnection, actor: str, key: str) -> bool:
    """Uploader, or a reader of any repository holding a commit that references the blob."""
    check_blob_key(key)
    sql = f"SELECT ({_READABLE_BY_ACTOR}) FROM (SELECT CAST(:key AS varchar) AS k) q"
    return bool((await conn.execute(text(sql), {"key": key, "actor": actor})).scalar())


async def check_blob_access(conn: AsyncConnection, actor: str, keys: Iterable[str]) -> None:
    """Refuse a commit naming a blob someone else owns that the actor cannot read (no laundering via commits)."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    sql = (
        f"SELECT k FROM unnest(CAST(:keys AS varchar[])) AS q(k) WHERE {_KNOWN} AND NOT ({_READABLE_BY_ACTOR}) LIMIT 1"
    )
    denied = (await conn.execute(text(sql), {"keys": wanted, "actor": actor})).scalar()
    if denied is not None:
        raise PermissionDenied(f"blob {denied} is not readable by you")


async def garbage_collect(
    conn: AsyncConnection,
    candidates: Mapping[str, float | None],
    grace_period_s: float,
    dry_run: bool,
    delete: Callable[[str], None] | None,
) -> GcResult:
    """Blobs among ``candidates`` that no commit references and are older than the grace period.

    ``candidates`` maps key -> the store's creation time (epoch seconds) or None.
    Unless ``dry_run``, tombstones them and calls ``delete`` (in a thread) for
    each before the transaction commits, while their rows are locked.
    """
    keys = sorted({check_blob_key(k) for k in candidates})
    if not keys:
        return GcResult([], 0, 0, False)
    # Rows for never-registered candidates (first sight = their store time, else now), then lock all.
    await conn.execute(
        text(
            "INSERT INTO blobs (key, created_at) "
            "SELECT k, COALESCE(to_timestamp(t), now()) "
            "FROM unnest(CAST(:keys AS varchar[]), CAST(:ts AS float8[])) AS q(k, t) "
            "ON CONFLICT DO NOTHING"
        ),
        {"keys": keys, "ts": [candidates[k] for k in keys]},
    )
    rows = (
        await conn.execute(
            text(
                "SELECT key, EXTRACT(EPOCH FROM created_at)::float8 AS created, deleted_at IS NOT NULL AS gone "
                "FROM blobs WHERE key = ANY(:keys) ORDER BY key FOR UPDATE"
            ),
            {"keys": keys},
        )
    ).all()
    referenced = set(
        (
            await conn.execute(
                text(f"SELECT k FROM unnest(CAST(:keys AS varchar[])) AS q(k) WHERE {_REFERENCED}"), {"keys": keys}
            )
        ).scalars()
    )
    now = time.time()
    deletable: list[str] = []
    young = 0
    for row in rows:
        if row.key in referenced:
            continue
        store_t = candidates.get(row.key)
        born = max(row.created, store_t) if store_t is not None else row.created
        if now - born < grace_period_s:
            young += 1
        else:
            deletable.append(row.key)
    deleted = False
    if deletable and not dry_run:
        await conn.execute(text("UPDATE blobs SET deleted_at = now() WHERE key = ANY(:keys)"), {"keys": deletable})
        await conn.execute(text("DELETE FROM blob_owners WHERE key = ANY(:keys)"), {"keys": deletable})
        if delete is not None:
            for key in deletable:
                await asyncio.to_thread(delete, key)
            deleted = True
    return GcResult(deletable, len(referenced), young, deleted)
