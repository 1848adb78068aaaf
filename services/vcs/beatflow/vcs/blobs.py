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

A commit may name a stem by its blob key alone: its content type, size and
duration come from an earlier commit's stem of the same blob, else from the
blob's header in the store (read once: from then on a commit holds them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.audioformat import header_from_prefix
from beatflow.common.blobstore import BlobStore
from beatflow.common.errors import InvalidArgument, NotFound
from beatflow.vcs import db
from beatflow.vcs.model import GcResult
from beatflow.vcs.names import check_blob_key
from beatflow.vcs.repo_access import READABLE, require_user

_REFERENCED = """
    EXISTS (SELECT 1 FROM commit_stems s WHERE s.blob_key = k)
 OR EXISTS (SELECT 1 FROM commits c WHERE c.mixdown_blob = k)
"""
# The checks below are asked for a few keys at a time, so each EXISTS is a probe of an index per
# key. ``OFFSET 0`` keeps the planner from turning one into a hashed subplan, which reads every
# blob (or every stem) an actor can reach once per statement: a commit's cost then grew with the
# database (8 ms of a 300-commit repository's commit went there).
_KNOWN = (
    "(EXISTS (SELECT 1 FROM blobs b WHERE b.key = k OFFSET 0)"
    " OR EXISTS (SELECT 1 FROM commit_stems s WHERE s.blob_key = k OFFSET 0)"
    " OR EXISTS (SELECT 1 FROM commits c WHERE c.mixdown_blob = k OFFSET 0))"
)
_READABLE_BY_ACTOR = f"""
    EXISTS (SELECT 1 FROM blobs b WHERE b.key = k AND b.uploader_id = :actor OFFSET 0)
 OR EXISTS (SELECT 1 FROM blob_owners o WHERE o.key = k AND o.user_id = :actor OFFSET 0)
 OR EXISTS (SELECT 1 FROM commit_stems s JOIN commits c ON c.id = s.commit_id
            JOIN repo_commits rc ON rc.commit_seq = c.seq
            JOIN repositories r ON r.seq = rc.repo_seq WHERE s.blob_key = k AND {READABLE} OFFSET 0)
 OR EXISTS (SELECT 1 FROM commits c JOIN repo_commits rc ON rc.commit_seq = c.seq
            JOIN repositories r ON r.seq = rc.repo_seq WHERE c.mixdown_blob = k AND {READABLE} OFFSET 0)
"""


_PROBE_BYTES = 64 * 1024


@dataclass(frozen=True)
class BlobAudio:
    """What a stem record says about its blob."""

    content_type: str
    size_bytes: int
    duration_s: float


def probe_blob(store: BlobStore, key: str) -> BlobAudio | None:
    """Type, size and duration from the blob's stat and header (WAV, FLAC; other types: duration 0)."""
    try:
        info = store.stat(key)
        prefix = store.read_range(key, 0, max(0, min(info.size, _PROBE_BYTES) - 1))
    except NotFound:
        return None
    kind, duration = header_from_prefix(prefix, info.size)
    return BlobAudio(kind.content_type if kind else info.content_type, info.size, duration or 0.0)


async def audio_info(
    conn: AsyncConnection, keys: Collection[str], probe: Callable[[str], BlobAudio | None] | None
) -> dict[str, BlobAudio]:
    """Content type, size and duration of the blobs vcs can describe: from an earlier commit's stem,
    else ``probe`` (the store); without a store, a registered blob's type and size with duration 0."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await conn.execute(
        db.sql(
            "SELECT DISTINCT ON (blob_key) blob_key, content_type, size_bytes, duration_s FROM commit_stems "
            "WHERE blob_key = ANY(:keys) ORDER BY blob_key, size_bytes DESC"
        ),
        {"keys": wanted},
    )
    found = {r.blob_key: BlobAudio(r.content_type, int(r.size_bytes), float(r.duration_s)) for r in rows}
    missing = [k for k in wanted if k not in found]
    if missing and probe is not None:
        probed = await asyncio.gather(*(asyncio.to_thread(probe, k) for k in missing))
        found.update({k: a for k, a in zip(missing, probed, strict=True) if a is not None})
    elif missing:
        rows = await conn.execute(
            text("SELECT key, content_type, size_bytes FROM blobs WHERE key = ANY(:keys) AND deleted_at IS NULL"),
            {"keys": missing},
        )
        found.update({r.key: BlobAudio(r.content_type, int(r.size_bytes), 0.0) for r in rows})
    return found


async def register_owned(conn: AsyncConnection, actor: str, blobs: Mapping[str, BlobAudio]) -> None:
    """Register blobs the caller vouches are ``actor``'s (a finished job's outputs), as an upload would."""
    keys = sorted(blobs)
    if not keys:
        return
    await conn.execute(
        text(
            "INSERT INTO blobs (key, uploader_id, content_type, size_bytes) "
            "SELECT k, :u, t, s FROM unnest(CAST(:keys AS varchar[]), CAST(:types AS varchar[]), "
            "CAST(:sizes AS bigint[])) AS q(k, t, s) "
            "ON CONFLICT (key) DO UPDATE SET deleted_at = NULL, "
            "uploader_id = COALESCE(blobs.uploader_id, EXCLUDED.uploader_id), "
            "created_at = CASE WHEN blobs.deleted_at IS NULL THEN blobs.created_at ELSE now() END"
        ),
        {
            "u": actor,
            "keys": keys,
            "types": [blobs[k].content_type for k in keys],
            "sizes": [blobs[k].size_bytes for k in keys],
        },
    )
    await conn.execute(
        text(
            "INSERT INTO blob_owners (key, user_id) SELECT k, :u FROM unnest(CAST(:keys AS varchar[])) AS q(k) "
            "ON CONFLICT DO NOTHING"
        ),
        {"u": actor, "keys": keys},
    )


async def require_readable(conn: AsyncConnection, actor: str, keys: Iterable[str]) -> None:
    """NOT_FOUND (as if absent) for the first blob ``actor`` cannot read, never-seen blobs included."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    sql = f"SELECT k FROM unnest(CAST(:keys AS varchar[])) AS q(k) WHERE NOT ({_READABLE_BY_ACTOR}) ORDER BY k LIMIT 1"
    denied = (await conn.execute(db.sql(sql), {"keys": wanted, "actor": actor})).scalar()
    if denied is not None:
        raise NotFound(f"audio {denied} not found")


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


# The first of :bkeys someone else owns that :actor cannot read (a statement of its own, or a CTE).
# (CASE: the planner orders AND-ed checks by their cost, and a new blob needs only the first.)
DENIED_BLOB = (
    "SELECT k FROM unnest(CAST(:bkeys AS varchar[])) AS q(k)"
    f" WHERE CASE WHEN {_KNOWN} THEN NOT ({_READABLE_BY_ACTOR}) ELSE false END LIMIT 1"
)


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
