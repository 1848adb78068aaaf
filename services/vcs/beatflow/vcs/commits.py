"""Commits and refs: reading, resolving names, writing with compare-and-swap on branch heads.

A commit is inserted once (content-addressed) and joined to the repository
through ``repo_commits``. Moving a branch is a single conditional UPDATE
(``... WHERE commit_id = :expected``) in the same transaction as the commit
rows, so concurrent writers either see their expected head and win, or get
FAILED_PRECONDITION naming the current head, and nothing they wrote remains.

With ``resolve_head`` the caller names no head: the branch's row is locked and
the commit goes on whatever it holds (concurrent writers queue instead of
failing); a new branch starts at the given commit or the default branch's head,
and an unrelated root history is made only when asked for (``orphan``).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, cast

from sqlalchemy import TextClause, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import (
    AlreadyExists,
    BeatflowError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from beatflow.vcs import blobs, db
from beatflow.vcs.hashing import commit_id
from beatflow.vcs.model import Commit, Metadata, Ref, Repository, Stem
from beatflow.vcs.names import check_blob_key, check_ref_name, check_stem_name, is_commit_id
from beatflow.vcs.repo_access import READABLE

MAX_MESSAGE = 20_000
MAX_STEMS = 256
MAX_PARENTS = 16

_COMMIT_COLS = (
    "c.id, c.parent_ids, c.author_id, u.username AS author_username, c.message, c.timestamp, "
    "c.mixdown_blob, c.metadata, c.generation"
)


def _metadata(raw: Any) -> Metadata:
    data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    return Metadata.from_canonical(data or {})


_LOAD_COMMITS = f"""
SELECT {_COMMIT_COLS},
       (SELECT jsonb_agg(jsonb_build_array(s.name, s.blob_key, s.content_type, s.size_bytes, s.duration_s)
                         ORDER BY s.name)
        FROM commit_stems s WHERE s.commit_id = c.id) AS stems
FROM commits c JOIN users u ON u.id = c.author_id
WHERE c.id = ANY(:ids)
"""


def _stems(raw: Any) -> tuple[Stem, ...]:
    data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    return tuple(Stem(n, k, t, int(size), float(dur)) for n, k, t, size, dur in data or ())


async def load_commits(
    conn: AsyncConnection, ids: Sequence[str], repo_id: str = "", *, members_only: bool = False
) -> dict[str, Commit]:
    """Commits by id with their stems, in one query (``members_only``: only those ``repo_id`` holds)."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    sql = _LOAD_COMMITS
    if members_only:
        sql += (
            " AND EXISTS (SELECT 1 FROM repo_commits rc WHERE rc.commit_seq = c.seq"
            " AND rc.repo_seq = (SELECT seq FROM repositories WHERE id = :repo))"
        )
    rows = (await conn.execute(db.sql(sql), {"ids": ids, "repo": repo_id})).all()
    return {r.id: commit_from_row(r, repo_id) for r in rows}


_STEMS_COL = (
    "CAST((SELECT jsonb_agg(jsonb_build_array(s.name, s.blob_key, s.content_type, s.size_bytes, s.duration_s)"
    " ORDER BY s.name) FROM commit_stems s WHERE s.commit_id = c.id) AS text) AS stems"
)
# What a query selects (from ``commits c JOIN users u``) to build a Commit with commit_from_row. The
# JSON columns come as text, parsed only for a commit the process has not built yet (a history page
# is mostly commits it has: parsing 100 JSON values per page cost more than the rest of the rows).
COMMIT_ROW = (
    "c.id, c.parent_ids, c.author_id, u.username AS author_username, c.message, c.timestamp, "
    f"c.mixdown_blob, CAST(c.metadata AS text) AS metadata, c.generation, {_STEMS_COL}"
)


# Commits never change once written (the id is the hash of their content; authors are never
# renamed), so a process keeps the ones it has built: a parent needs no read before the next
# commit onto it, and a history page re-read builds nothing again. Bounded; starts over when full.
MAX_CACHED = 20_000
_CACHE: dict[str, Commit] = {}


def remember(commit: Commit) -> None:
    if len(_CACHE) >= MAX_CACHED:
        _CACHE.clear()
    _CACHE[commit.id] = commit


def cached(cid: str) -> Commit | None:
    return _CACHE.get(cid)


def commit_from_row(r: Any, repo_id: str = "") -> Commit:
    c = _CACHE.get(r.id)
    if c is not None and c.repo_id == repo_id:
        return c
    c = _commit_from_row(r, repo_id)
    remember(c)
    return c


def _commit_from_row(r: Any, repo_id: str) -> Commit:
    return Commit(
        id=r.id,
        parent_ids=tuple(r.parent_ids),
        author_id=r.author_id,
        author_username=r.author_username,
        message=r.message,
        timestamp=r.timestamp,
        stems=_stems(r.stems),
        mixdown_blob=r.mixdown_blob or "",
        metadata=_metadata(r.metadata),
        generation=r.generation,
        repo_id=repo_id,
    )


async def commits_in_repo(conn: AsyncConnection, repo_id: str, ids: Iterable[str]) -> set[str]:
    ids = list(set(ids))
    rows = await conn.execute(
        text(
            "SELECT c.id FROM commits c JOIN repo_commits rc ON rc.commit_seq = c.seq "
            "WHERE rc.repo_seq = (SELECT seq FROM repositories WHERE id = :r) AND c.id = ANY(:ids)"
        ),
        {"r": repo_id, "ids": ids},
    )
    return set(rows.scalars())


async def get_commit(conn: AsyncConnection, repo: Repository, cid: str) -> Commit:
    """A commit of ``repo`` (NOT_FOUND if it is not in this repository)."""
    found = await load_commits(conn, [cid], repo.id, members_only=True) if is_commit_id(cid) else {}
    if cid not in found:
        raise NotFound(f"commit {cid[:64]!r} not found in repository {repo.owner_username}/{repo.name}")
    return found[cid]


_BRANCH_HEAD = "SELECT commit_id FROM refs WHERE repo_id = :r AND kind = 'branch' AND name = :n"


async def branch_head(conn: AsyncConnection, repo_id: str, name: str, *, lock: bool = False) -> str | None:
    """The branch's head (None: no such branch); ``lock`` holds its row until the transaction ends."""
    row = await conn.execute(db.sql(_BRANCH_HEAD + (" FOR UPDATE" if lock else "")), {"r": repo_id, "n": name})
    return row.scalar()


async def _start_point(
    conn: AsyncConnection, repo: Repository, branch: str, expected_head: str, orphan: bool
) -> tuple[str, str]:
    """(compare-and-swap head, first parent) for a commit onto ``branch``'s current head (see ``resolve_head``)."""
    current = await branch_head(conn, repo.id, branch, lock=True)
    if current is not None:
        if orphan:
            raise FailedPrecondition(f"branch {branch!r} exists; an orphan commit starts a new branch")
        if expected_head and expected_head != current:
            raise stale_error(branch, expected_head, current)
        return current, current
    if orphan:
        return "", ""
    if expected_head:
        return "", expected_head
    return "", await branch_head(conn, repo.id, repo.default_branch) or ""


def _merge_metadata(base: Metadata, given: Metadata) -> Metadata:
    """``base`` with the fields set in ``given`` (a number not None, a text not empty) replacing its own."""
    return Metadata(
        bpm=given.bpm if given.bpm is not None else base.bpm,
        key=given.key or base.key,
        duration_s=given.duration_s if given.duration_s is not None else base.duration_s,
        sample_rate=given.sample_rate if given.sample_rate is not None else base.sample_rate,
        generation_json=given.generation_json or base.generation_json,
    )


async def resolve(conn: AsyncConnection, repo: Repository, ref: str) -> str:
    """Commit id named by a branch, a tag or a full commit id of this repository ('' = default branch)."""
    name = ref or repo.default_branch
    row = (
        await conn.execute(
            text(
                "SELECT commit_id FROM refs WHERE repo_id = :r AND name = :n "
                "ORDER BY CASE kind WHEN 'branch' THEN 0 ELSE 1 END LIMIT 1"
            ),
            {"r": repo.id, "n": name},
        )
    ).scalar()
    if row is not None:
        return str(row)
    if is_commit_id(name) and await commits_in_repo(conn, repo.id, [name]):
        return name
    if not ref:
        raise NotFound(f"branch {name!r} has no commits yet")
    raise NotFound(f"no branch, tag or commit {name[:80]!r} in repository {repo.owner_username}/{repo.name}")


_RESOLVE_ALL = """
SELECT COALESCE(
    (SELECT commit_id FROM refs WHERE repo_id = :r AND name = n.name
     ORDER BY CASE kind WHEN 'branch' THEN 0 ELSE 1 END LIMIT 1),
    (SELECT c.id FROM commits c JOIN repo_commits rc ON rc.commit_seq = c.seq
     WHERE rc.repo_seq = (SELECT seq FROM repositories WHERE id = :r) AND c.id = n.name)
) AS id
FROM unnest(CAST(:names AS varchar[])) WITH ORDINALITY AS n(name, ord) {guard} ORDER BY n.ord
"""
# Names resolved for an actor not yet checked (``quick_resolve``): nothing unless :actor may read
# the repository; '' names its default branch.
_RESOLVE_CHECKED = _RESOLVE_ALL.replace(
    "FROM unnest(CAST(:names AS varchar[]))",
    "FROM unnest(ARRAY(SELECT COALESCE(NULLIF(x, ''), (SELECT default_branch FROM repositories WHERE id = :r))"
    " FROM unnest(CAST(:names AS varchar[])) WITH ORDINALITY AS x0(x, o) ORDER BY o))",
).format(guard=f"WHERE EXISTS (SELECT 1 FROM repositories r WHERE r.id = :r AND {READABLE})")
_RESOLVE_ALL = _RESOLVE_ALL.format(guard="")


async def quick_resolve(conn: AsyncConnection, repo_id: str, actor: str, refs: Sequence[str]) -> list[str] | None:
    """:func:`resolve_all` in one statement that also checks ``actor`` may read the repository, so it
    is not read first; None when a name is not found or the actor may not read (the caller then
    takes the full path, which reports that as usual)."""
    found = [r.id for r in await db.fetch(conn, _RESOLVE_CHECKED, {"r": repo_id, "names": list(refs), "actor": actor})]
    return found if len(found) == len(refs) and None not in found else None


async def resolve_all(conn: AsyncConnection, repo: Repository, refs: Sequence[str]) -> list[str]:
    """:func:`resolve` for several names in one round trip (errors as :func:`resolve` gives them)."""
    names = [r or repo.default_branch for r in refs]
    found = [r.id for r in await db.fetch(conn, _RESOLVE_ALL, {"r": repo.id, "names": names})]
    return [cid if cid is not None else await resolve(conn, repo, ref) for ref, cid in zip(refs, found, strict=True)]


def _check_stem(stem: Stem) -> Stem:
    check_stem_name(stem.name)
    check_blob_key(stem.blob_key, f"blob key of stem {stem.name!r}")
    if stem.size_bytes < 0 or not math.isfinite(stem.duration_s) or stem.duration_s < 0:
        raise InvalidArgument(f"stem {stem.name!r}: size and duration must be non-negative")
    return Stem(stem.name, stem.blob_key, stem.content_type or "audio/wav", stem.size_bytes, stem.duration_s)


def _check_metadata(meta: Metadata) -> Metadata:
    for name in ("bpm", "duration_s"):
        value = getattr(meta, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            raise InvalidArgument(f"metadata {name} must be a non-negative number")
    if meta.sample_rate is not None and meta.sample_rate <= 0:
        raise InvalidArgument("metadata sample_rate must be positive")
    if meta.generation_json:
        try:
            json.loads(meta.generation_json)
        except ValueError:
            raise InvalidArgument("metadata generation_json is not valid JSON") from None
    if len(meta.key) > 32:
        raise InvalidArgument("metadata key longer than 32 characters")
    return meta


def build_commit(
    *,
    parents: Sequence[str],
    parent_generations: Iterable[int],
    stems: Iterable[Stem],
    mixdown_blob: str,
    metadata: Metadata,
    author_id: str,
    author_username: str,
    message: str,
    repo_id: str,
    timestamp: float | None = None,
) -> Commit:
    stems = tuple(sorted(stems, key=lambda s: s.name))
    ts = round(time.time(), 6) if timestamp is None else timestamp
    cid = commit_id(
        parents=parents,
        stems=stems,
        mixdown_blob=mixdown_blob,
        metadata=metadata,
        author_id=author_id,
        message=message,
        timestamp=ts,
    )
    return Commit(
        id=cid,
        parent_ids=tuple(parents),
        author_id=author_id,
        author_username=author_username,
        message=message,
        timestamp=ts,
        stems=stems,
        mixdown_blob=mixdown_blob,
        metadata=metadata,
        generation=1 + max(parent_generations, default=0),
        repo_id=repo_id,
    )


async def _stale(conn: db.Conn, repo_id: str, branch: str, expected: str) -> FailedPrecondition:
    """The refusal naming the branch's head now (read after the write statement, so on a SQLAlchemy
    connection its transaction is open; the quick commit's pooled connection reads in autocommit)."""
    rows = await db.fetch(conn, _BRANCH_HEAD, {"r": repo_id, "n": branch})
    return stale_error(branch, expected, rows[0].commit_id if rows else None)


# Trailing metadata of a stale-head refusal: the branch's current head ('' = no such branch), so a
# writer can rebuild on it and retry at once, without reading the refs again.
CURRENT_HEAD = "beatflow-current-head"


def stale_error(branch: str, expected: str, current: str | None) -> FailedPrecondition:
    details = {CURRENT_HEAD: current or ""}
    if current is None:
        return FailedPrecondition(f"branch {branch!r} does not exist (expected head {expected or 'none'})", details)
    if not expected:
        return FailedPrecondition(
            f"branch {branch!r} already exists at {current}; pass it as the expected head", details
        )
    return FailedPrecondition(f"stale head: branch {branch!r} is at {current}, not at the expected {expected}", details)


async def move_branch(conn: AsyncConnection, repo_id: str, branch: str, expected: str, new: str) -> None:
    """Compare-and-swap the branch head from ``expected`` ('' = branch absent) to ``new``."""
    if expected:
        done = await conn.execute(
            text(
                "UPDATE refs SET commit_id = :new WHERE repo_id = :r AND kind = 'branch' AND name = :b "
                "AND commit_id = :exp RETURNING name"
            ),
            {"new": new, "r": repo_id, "b": branch, "exp": expected},
        )
    else:
        done = await conn.execute(
            text(
                "INSERT INTO refs (repo_id, kind, name, commit_id) VALUES (:r, 'branch', :b, :new) "
                "ON CONFLICT DO NOTHING RETURNING name"
            ),
            {"new": new, "r": repo_id, "b": branch},
        )
    if done.first() is None:
        raise await _stale(conn, repo_id, branch, expected)


_STORE_COMMIT = """
WITH new_commit AS (
    INSERT INTO commits (id, parent_ids, author_id, message, timestamp, mixdown_blob, metadata, generation)
    VALUES (:id, :parents, :author, :msg, :ts, :mix, CAST(:meta AS jsonb), :gen)
    ON CONFLICT (id) DO NOTHING RETURNING id, seq
), new_stems AS (
    INSERT INTO commit_stems (commit_id, name, blob_key, content_type, size_bytes, duration_s)
    SELECT new_commit.id, u.* FROM new_commit, unnest(CAST(:names AS varchar[]), CAST(:keys AS varchar[]),
        CAST(:types AS varchar[]), CAST(:sizes AS bigint[]), CAST(:durs AS float8[])) AS u
)
INSERT INTO repo_commits (repo_seq, commit_seq)
SELECT (SELECT seq FROM repositories WHERE id = :repo),
       COALESCE((SELECT seq FROM new_commit), (SELECT seq FROM commits WHERE id = :id))
ON CONFLICT DO NOTHING
"""


async def store_commit(conn: AsyncConnection, repo_id: str, commit: Commit) -> None:
    """Insert the commit (once, shared by every repository) and make it a member of ``repo_id`` (one statement)."""
    await conn.execute(db.sql(_STORE_COMMIT), {**_commit_params(commit), "repo": repo_id})


def _known_blobs(parents: Iterable[Commit]) -> set[str]:
    known: set[str] = set()
    for p in parents:
        known.update(s.blob_key for s in p.stems)
        if p.mixdown_blob:
            known.add(p.mixdown_blob)
    return known


_CAS_UPDATE = """
    UPDATE refs SET commit_id = :id
    WHERE repo_id = :repo AND kind = 'branch' AND name = {branch} AND commit_id = :expected
      AND NOT EXISTS (SELECT 1 FROM denied) AND NOT EXISTS (SELECT 1 FROM pinned WHERE gone){guard}
    RETURNING 1
"""
_CAS_CREATE = """
    INSERT INTO refs (repo_id, kind, name, commit_id) SELECT :repo, 'branch', {branch}, :id
    WHERE NOT EXISTS (SELECT 1 FROM denied) AND NOT EXISTS (SELECT 1 FROM pinned WHERE gone){guard}
    ON CONFLICT DO NOTHING RETURNING 1
"""
# The actor's right to write and name, and the branch ('' = the default one), for a write that
# did not read the repository first (``_ACCESS_GUARD`` holds the branch back unless it may write).
_ACCESS = """
access AS (
    SELECT r.default_branch,
           (SELECT username FROM users WHERE id = :actor) AS username,
           r.owner_id = :actor OR EXISTS (SELECT 1 FROM collaborators co
                                          WHERE co.repo_id = r.id AND co.user_id = :actor AND co.role >= 2)
               AS may_write
    FROM repositories r WHERE r.id = :repo
),
"""
_ACCESS_GUARD = "\n      AND (SELECT may_write AND username IS NOT NULL FROM access)"
_ACCESS_BRANCH = "COALESCE(CAST(:branch AS varchar), (SELECT default_branch FROM access))"
_ACCESS_COLS = """,
       COALESCE((SELECT may_write AND username IS NOT NULL FROM access), false) AS may_write,
       (SELECT username FROM access) AS username,
       {branch} AS branch"""
# One statement for the whole write, atomic on its own (it needs no surrounding transaction):
# check the actor may use the new blobs and share-lock the rows of those already known (a
# collector holding one makes us wait, then see its tombstone); only if none is refused or
# collected, move the branch (compare-and-swap); only if it moved, record the new blobs, insert
# the commit, its stems and the membership. Nothing is written unless the branch moved; the
# branch's head is returned for the stale-head answer.
_WRITE_COMMIT = f"""
WITH {{access}}denied AS ({blobs.DENIED_BLOB}),
pinned AS (
    SELECT key, deleted_at IS NOT NULL AS gone FROM blobs
    WHERE key = ANY(CAST(:bkeys AS varchar[])) AND NOT EXISTS (SELECT 1 FROM denied)
    ORDER BY key FOR SHARE
),
moved AS ({{cas}}),
added AS (
    INSERT INTO blobs (key, content_type, size_bytes)
    SELECT * FROM unnest(CAST(:bkeys AS varchar[]), CAST(:btypes AS varchar[]), CAST(:bsizes AS bigint[]))
    WHERE EXISTS (SELECT 1 FROM moved)
    ON CONFLICT DO NOTHING RETURNING key
),
new_commit AS (
    INSERT INTO commits (id, parent_ids, author_id, message, timestamp, mixdown_blob, metadata, generation)
    SELECT :id, :parents, :author, :msg, :ts, :mix, CAST(:meta AS jsonb), :gen
    WHERE EXISTS (SELECT 1 FROM moved)
    ON CONFLICT (id) DO NOTHING RETURNING id, seq
),
new_stems AS (
    INSERT INTO commit_stems (commit_id, name, blob_key, content_type, size_bytes, duration_s)
    SELECT new_commit.id, u.* FROM new_commit, unnest(CAST(:names AS varchar[]), CAST(:keys AS varchar[]),
        CAST(:types AS varchar[]), CAST(:sizes AS bigint[]), CAST(:durs AS float8[])) AS u
),
member AS (
    INSERT INTO repo_commits (repo_seq, commit_seq)
    SELECT (SELECT seq FROM repositories WHERE id = :repo),
           COALESCE((SELECT seq FROM new_commit), (SELECT seq FROM commits WHERE id = :id))
    WHERE EXISTS (SELECT 1 FROM moved)
    ON CONFLICT DO NOTHING
)
SELECT EXISTS (SELECT 1 FROM moved) AS moved,
       ARRAY(SELECT key FROM pinned WHERE gone ORDER BY key) AS gone,
       (SELECT k FROM denied) AS denied,
       (SELECT commit_id FROM refs WHERE repo_id = :repo AND kind = 'branch' AND name = {{branch}}) AS head{{cols}}
"""


@functools.cache
def _write_sql(update: bool, checks_access: bool) -> TextClause:
    """The write statement: compare-and-swap (``update``) or create the branch; ``checks_access``:
    the statement also checks the actor may write (for a caller that has not read the repository)."""
    branch = _ACCESS_BRANCH if checks_access else ":branch"
    guard = _ACCESS_GUARD if checks_access else ""
    cas = (_CAS_UPDATE if update else _CAS_CREATE).format(branch=branch, guard=guard)
    return db.sql(
        _WRITE_COMMIT.format(
            access=_ACCESS if checks_access else "",
            cas=cas,
            branch=branch,
            cols=_ACCESS_COLS.format(branch=branch) if checks_access else "",
        )
    )


def _commit_params(commit: Commit) -> dict[str, object]:
    st = commit.stems
    return {
        "id": commit.id,
        "parents": list(commit.parent_ids),
        "author": commit.author_id,
        "msg": commit.message,
        "ts": commit.timestamp,
        "mix": commit.mixdown_blob or None,
        "meta": json.dumps(commit.metadata.canonical()),
        "gen": commit.generation,
        "names": [s.name for s in st],
        "keys": [s.blob_key for s in st],
        "types": [s.content_type for s in st],
        "sizes": [s.size_bytes for s in st],
        "durs": [s.duration_s for s in st],
    }


async def _write(
    conn: db.Conn,
    repo_id: str,
    actor: str,
    branch: str | None,
    expected: str,
    commit: Commit,
    parents: Iterable[Commit],
    checks_access: bool,
) -> Any:
    """Run the write statement (see ``_WRITE_COMMIT``); its row (``checks_access``: on asyncpg directly)."""
    known = _known_blobs(parents)
    fresh: dict[str, tuple[str, int]] = {s.blob_key: (s.content_type, s.size_bytes) for s in commit.stems}
    if commit.mixdown_blob:
        fresh.setdefault(commit.mixdown_blob, ("application/octet-stream", 0))
    for k in known:
        fresh.pop(k, None)
    bkeys = sorted(fresh)
    params = {
        **_commit_params(commit),
        "repo": repo_id,
        "actor": actor,
        "branch": branch,
        "expected": expected,
        "bkeys": bkeys,
        "btypes": [fresh[k][0] for k in bkeys],
        "bsizes": [fresh[k][1] for k in bkeys],
    }
    statement = _write_sql(bool(expected), checks_access)
    if checks_access:  # the quick commit: no SQLAlchemy layer (its errors are mapped by the caller)
        return (await db.fetch(conn, statement.text, params))[0]
    return (await cast(AsyncConnection, conn).execute(statement, params)).one()  # the caller's transaction


async def _refused(conn: db.Conn, repo_id: str, branch: str, expected: str, row: Any) -> None:
    """Raise what refused a write (its row from ``_write``), if anything did."""
    if row.denied is not None:  # no laundering of someone else's blob through a commit
        raise PermissionDenied(f"blob {row.denied} is not readable by you")
    if row.gone:
        raise FailedPrecondition(f"blob {row.gone[0]} was garbage-collected; upload and register it again")
    if not row.moved:
        if row.head is None or row.head == expected:  # moved by a writer that committed during ours: read again
            raise await _stale(conn, repo_id, branch, expected)
        raise stale_error(branch, expected, row.head)


async def commit_onto_branch(
    conn: AsyncConnection,
    repo: Repository,
    actor: str,
    branch: str,
    expected: str,
    commit: Commit,
    parents: Iterable[Commit],
) -> Commit:
    """Write ``commit`` and move ``branch`` from ``expected`` ('' = create it) to it, in the caller's transaction."""
    try:
        row = await _write(conn, repo.id, actor, branch, expected, commit, parents, False)
    except IntegrityError:  # the new branch's repository row is gone: deleted while we committed
        raise NotFound(f"repository {repo.owner_username}/{repo.name} was deleted") from None
    await _refused(conn, repo.id, branch, expected, row)
    remember(commit)
    return commit


def _checked_request(
    message: str, stems: Sequence[Stem], mixdown_blob: str, metadata: Metadata
) -> tuple[list[Stem], Metadata]:
    """The request's own checks (nothing read): stems with their defaults, the metadata."""
    if len(message) > MAX_MESSAGE:
        raise InvalidArgument(f"message longer than {MAX_MESSAGE} characters")
    if len(stems) > MAX_STEMS:
        raise InvalidArgument(f"more than {MAX_STEMS} stems")
    checked = [_check_stem(s) for s in stems]
    names = [s.name for s in checked]
    if len(set(names)) != len(names):
        raise InvalidArgument("stem names must be unique within a commit")
    if mixdown_blob:
        check_blob_key(mixdown_blob, "mixdown blob key")
    return checked, _check_metadata(metadata)


def _stems_onto(parent: Commit | None, inherit: bool, remove: Sequence[str], stems: Iterable[Stem]) -> dict[str, Stem]:
    stem_map: dict[str, Stem] = parent.stem_map() if inherit and parent is not None else {}
    for name in remove:
        if name not in stem_map:
            # A conflict with the parent's state (409), not a malformed request.
            raise FailedPrecondition(
                f"cannot remove stem {name!r}: the parent has no such stem (or inherit_stems is off)"
            )
        del stem_map[name]
    for s in stems:
        stem_map[s.name] = s
    return stem_map


class _Turns:
    """The quick commits of this process onto one branch, one statement at a time (see ``quick_commit``)."""

    __slots__ = ("lock", "seen_actor", "seen_at", "seen_branch", "seen_head", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.seen_at = -1  # the ticket of the statement that saw the branch last (-1: none yet)
        self.seen_head = ""
        self.seen_branch = ""
        self.seen_actor = ""


_TURNS: dict[tuple[str, str], _Turns] = {}
_TICKETS = itertools.count()


async def quick_commit(
    connect: Callable[[], AbstractAsyncContextManager[db.Conn]],
    repo_id: str,
    actor: str,
    *,
    branch: str,
    expected_head: str,
    message: str,
    stems: Sequence[Stem],
    mixdown_blob: str,
    metadata: Metadata,
    inherit_stems: bool = False,
    remove_stems: Sequence[str] = (),
    inherit_metadata: bool = False,
) -> Commit | None:
    """The usual compare-and-swap commit in one round trip, when this process knows the parent.

    Commits are immutable, so the parent comes from the process's cache, and the write statement
    itself checks the actor may write to the repository and finds the default branch. None: the
    caller takes the full path (:func:`create_commit`), which reads the repository and the parent
    first and reports whatever refused the quick one in the usual order (an actor who may not
    write learns nothing about the parent or the branch here).

    Writers racing onto one branch take turns in this process (one write statement at a time per
    branch, first come first served): the others wait here, not on the branch's row lock in
    PostgreSQL. A writer whose turn comes after a statement that was sent after it arrived, by the
    same actor (so that statement also found the actor may write), and that left the branch at
    another head than the one expected, is refused with that head without a statement of its own:
    the head was not the expected one at a moment during its call (what a compare-and-swap answers).
    """
    parent = _CACHE.get(expected_head)
    if parent is None or not actor or any(s.size_bytes == 0 for s in stems):
        return None
    try:
        if branch:
            check_ref_name(branch)
        checked, metadata = _checked_request(message, stems, mixdown_blob, metadata)
        if inherit_metadata:
            metadata = _merge_metadata(parent.metadata, metadata)
        stem_map = _stems_onto(parent, inherit_stems, remove_stems, checked)
    except BeatflowError:
        return None
    key = (repo_id, branch)
    turns = _TURNS.get(key)
    if turns is None:
        turns = _TURNS[key] = _Turns()
    arrived = next(_TICKETS)
    turns.users += 1
    try:
        async with turns.lock:
            if turns.seen_at > arrived and turns.seen_actor == actor and turns.seen_head != expected_head:
                raise stale_error(turns.seen_branch, expected_head, turns.seen_head)
            commit = build_commit(
                parents=[expected_head],
                parent_generations=[parent.generation],
                stems=stem_map.values(),
                mixdown_blob=mixdown_blob,
                metadata=metadata,
                author_id=actor,
                author_username="",
                message=message,
                repo_id=repo_id,
            )
            async with connect() as conn:
                sent = next(_TICKETS)
                row = await _write(conn, repo_id, actor, branch or None, expected_head, commit, [parent], True)
                if not row.may_write:
                    return None
                # What the statement saw: the branch moved to the new commit, or held another head.
                head = commit.id if row.moved else row.head
                if head is not None and (row.moved or (head != expected_head and row.denied is None)):
                    turns.seen_at, turns.seen_head, turns.seen_branch, turns.seen_actor = sent, head, row.branch, actor
                await _refused(conn, repo_id, row.branch, expected_head, row)
    finally:
        turns.users -= 1
        if not turns.users:
            del _TURNS[key]
    commit = replace(commit, author_username=row.username)
    remember(commit)
    return commit


async def create_commit(
    conn: AsyncConnection,
    repo: Repository,
    actor: str,
    actor_username: str,
    *,
    branch: str,
    expected_head: str,
    message: str,
    stems: Sequence[Stem],
    mixdown_blob: str,
    metadata: Metadata,
    extra_parent_ids: Sequence[str] = (),
    inherit_stems: bool = False,
    remove_stems: Sequence[str] = (),
    resolve_head: bool = False,
    orphan: bool = False,
    inherit_metadata: bool = False,
    owned_blobs: Sequence[str] = (),
    require_readable: bool = False,
    probe: Callable[[str], blobs.BlobAudio | None] | None = None,
) -> Commit:
    """Write a commit of ``stems`` onto ``branch`` (see the module docstring and ``CreateCommitRequest``)."""
    branch = check_ref_name(branch or repo.default_branch)
    if expected_head and not is_commit_id(expected_head):
        raise InvalidArgument(f"expected_head {expected_head[:80]!r} is not a commit id")
    if orphan and not resolve_head:
        raise InvalidArgument("orphan needs resolve_head (without it, an empty expected_head starts a root commit)")
    checked, metadata = _checked_request(message, stems, mixdown_blob, metadata)
    owned = {check_blob_key(k) for k in owned_blobs}
    named = {s.blob_key for s in checked} | ({mixdown_blob} if mixdown_blob else set())
    if owned - named:
        raise InvalidArgument(f"owned blob {sorted(owned - named)[0]} is not a stem or mixdown of this commit")
    if require_readable:
        await blobs.require_readable(conn, actor, named - owned)
    info = await blobs.audio_info(conn, owned | {s.blob_key for s in checked if s.size_bytes == 0}, probe)
    if lost := sorted(owned - info.keys()):
        raise NotFound(f"audio {lost[0]} not found")
    await blobs.register_owned(conn, actor, {k: info[k] for k in owned})
    undescribed = {s.name for s in checked if s.size_bytes == 0 and s.blob_key in info}
    checked = [replace(s, **vars(info[s.blob_key])) if s.name in undescribed else s for s in checked]
    described = [s for s in checked if s.name in undescribed]
    parent = expected_head
    if resolve_head:
        expected_head, parent = await _start_point(conn, repo, branch, expected_head, orphan)
    parent_ids = ([parent] if parent else []) + [p for p in extra_parent_ids if p != parent]
    if len(parent_ids) > MAX_PARENTS or len(set(parent_ids)) != len(parent_ids):
        raise InvalidArgument("parents must be distinct (at most 16)")
    for p in parent_ids:
        if not is_commit_id(p):
            raise InvalidArgument(f"parent {p[:80]!r} is not a commit id")
    # The first parent is the head the write must find (compare-and-swap, or locked): if it is not
    # this repository's, the write refuses. So it may come from the cache; the others are checked.
    first = _CACHE.get(parent) if parent and parent == expected_head else None
    parents = {first.id: first} if first is not None else {}
    if rest := [p for p in parent_ids if p not in parents]:
        parents.update(await load_commits(conn, rest, repo.id, members_only=True))
    missing = set(parent_ids) - parents.keys()
    if missing:
        if expected_head in missing:
            raise await _stale(conn, repo.id, branch, expected_head)
        raise NotFound(f"parent commit {sorted(missing)[0]} not found in this repository")
    if inherit_metadata and parent:
        metadata = _merge_metadata(parents[parent].metadata, metadata)
    if metadata.duration_s is None and any(s.duration_s > 0 for s in described):
        metadata = replace(metadata, duration_s=max(s.duration_s for s in described))
    stem_map = _stems_onto(parents[parent] if parent else None, inherit_stems, remove_stems, checked)
    commit = build_commit(
        parents=parent_ids,
        parent_generations=[parents[p].generation for p in parent_ids],
        stems=stem_map.values(),
        mixdown_blob=mixdown_blob,
        metadata=metadata,
        author_id=actor,
        author_username=actor_username,
        message=message,
        repo_id=repo.id,
    )
    return await commit_onto_branch(conn, repo, actor, branch, expected_head, commit, parents.values())


# ---- refs -------------------------------------------------------------------------------------


async def list_refs(conn: AsyncConnection, repo_id: str) -> list[Ref]:
    rows = await conn.execute(
        text("SELECT name, commit_id, kind, message FROM refs WHERE repo_id = :r ORDER BY kind, name"), {"r": repo_id}
    )
    return [Ref(r.name, r.commit_id, r.kind == "tag", r.message) for r in rows]


async def _insert_ref(conn: AsyncConnection, repo_id: str, kind: str, name: str, cid: str, message: str = "") -> Ref:
    try:
        async with conn.begin_nested():
            await conn.execute(
                text("INSERT INTO refs (repo_id, kind, name, commit_id, message) VALUES (:r, :k, :n, :c, :m)"),
                {"r": repo_id, "k": kind, "n": name, "c": cid, "m": message},
            )
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", "") != "23505":  # not a duplicate: the repository was deleted meanwhile
            raise NotFound(f"repository {repo_id} not found") from None
        raise AlreadyExists(f"{kind} {name!r} already exists") from None
    return Ref(name, cid, kind == "tag", message)


async def create_branch(conn: AsyncConnection, repo: Repository, name: str, from_ref: str) -> Ref:
    check_ref_name(name, "branch")
    cid = await resolve(conn, repo, from_ref)
    return await _insert_ref(conn, repo.id, "branch", name, cid)


async def delete_ref(conn: AsyncConnection, repo: Repository, kind: str, name: str) -> Ref:
    if kind == "branch" and name == repo.default_branch:
        raise FailedPrecondition(f"{name!r} is the default branch and cannot be deleted")
    row = (
        await conn.execute(
            text("DELETE FROM refs WHERE repo_id = :r AND kind = :k AND name = :n RETURNING commit_id, message"),
            {"r": repo.id, "k": kind, "n": name},
        )
    ).first()
    if row is None:
        raise NotFound(f"{kind} {name[:80]!r} not found")
    return Ref(name, row.commit_id, kind == "tag", row.message)


async def rename_branch(conn: AsyncConnection, repo: Repository, name: str, new_name: str) -> Ref:
    check_ref_name(new_name, "branch")
    try:
        async with conn.begin_nested():
            row = (
                await conn.execute(
                    text(
                        "UPDATE refs SET name = :new WHERE repo_id = :r AND kind = 'branch' AND name = :old "
                        "RETURNING commit_id"
                    ),
                    {"r": repo.id, "old": name, "new": new_name},
                )
            ).first()
    except IntegrityError:
        raise AlreadyExists(f"branch {new_name!r} already exists") from None
    if row is None:
        raise NotFound(f"branch {name[:80]!r} not found")
    if name == repo.default_branch:
        await conn.execute(
            text("UPDATE repositories SET default_branch = :n WHERE id = :r"), {"n": new_name, "r": repo.id}
        )
    return Ref(new_name, row.commit_id)


async def create_tag(conn: AsyncConnection, repo: Repository, name: str, target: str, message: str) -> Ref:
    check_ref_name(name, "tag")
    if len(message) > MAX_MESSAGE:
        raise InvalidArgument(f"tag message longer than {MAX_MESSAGE} characters")
    cid = await resolve(conn, repo, target)
    return await _insert_ref(conn, repo.id, "tag", name, cid, message)
