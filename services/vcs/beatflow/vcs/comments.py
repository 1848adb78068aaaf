"""Comments on commits and merge requests: threads, optional stem + time anchor, resolve.

A thread is a top-level comment and its replies (one level: a reply to a reply joins the
thread). Only the thread's root carries an anchor (a stem of the commit and a start/end time
within that stem's recorded duration) and the resolved state. Deleting a comment blanks it
and keeps its place, so the replies of others stay readable.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from beatflow.vcs import feed
from beatflow.vcs.commits import get_commit, load_commits
from beatflow.vcs.model import Repository, Role
from beatflow.vcs.names import check_stem_name
from beatflow.vcs.page_tokens import decode_token, encode_token
from beatflow.vcs.repo_access import is_id

MAX_BODY = 4000
DEFAULT_PAGE = 100
MAX_PAGE = 500
# Rounding slack when a client sends the end of the stem as a float.
_DURATION_SLACK_S = 1e-3


@dataclass(frozen=True)
class Anchor:
    stem: str
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class Comment:
    id: str
    repo_id: str
    commit_id: str
    merge_request_id: str
    parent_id: str
    author_id: str
    author_username: str
    body: str
    stem: str
    start_s: float | None
    end_s: float | None
    resolved: bool
    resolved_by: str
    deleted: bool
    created_at: float
    updated_at: float
    seq: int = 0


def check_body(body: str) -> str:
    """Plain text: no control characters but newline and tab, not blank, at most MAX_BODY characters."""
    body = body.strip()
    if not body:
        raise InvalidArgument("comment body must not be empty")
    if len(body) > MAX_BODY:
        raise InvalidArgument(f"comment body longer than {MAX_BODY} characters")
    if any((ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 for ch in body):
        raise InvalidArgument("comment body must be plain text (no control characters)")
    return body


_SELECT = """
SELECT c.id, c.seq, c.repo_id, c.commit_id, c.merge_request_id, c.parent_id, c.author_id, u.username AS author_username,
       c.body, c.stem, c.start_s, c.end_s, c.resolved, c.resolved_by, c.deleted,
       EXTRACT(EPOCH FROM c.created_at)::float8 AS created_at, EXTRACT(EPOCH FROM c.updated_at)::float8 AS updated_at
FROM comments c JOIN users u ON u.id = c.author_id
"""


def _comment(row: Any) -> Comment:
    return Comment(
        id=row.id,
        repo_id=row.repo_id,
        commit_id=row.commit_id,
        merge_request_id=row.merge_request_id or "",
        parent_id=row.parent_id or "",
        author_id=row.author_id,
        author_username=row.author_username,
        body=row.body,
        stem=row.stem or "",
        start_s=row.start_s,
        end_s=row.end_s,
        resolved=bool(row.resolved),
        resolved_by=row.resolved_by or "",
        deleted=bool(row.deleted),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        seq=int(row.seq),
    )


async def load_comment(conn: AsyncConnection, repo: Repository, comment_id: str, *, lock: bool = False) -> Comment:
    if not is_id(comment_id):
        raise NotFound(f"comment {comment_id[:64]!r} not found")
    sql = _SELECT + " WHERE c.id = :id AND c.repo_id = :r" + (" FOR UPDATE OF c" if lock else "")
    row = (await conn.execute(text(sql), {"id": comment_id, "r": repo.id})).first()
    if row is None:
        raise NotFound(f"comment {comment_id} not found")
    return _comment(row)


async def _check_anchor(conn: AsyncConnection, repo: Repository, commit_id: str, anchor: Anchor) -> None:
    check_stem_name(anchor.stem)
    commit = (await load_commits(conn, [commit_id], repo.id))[commit_id]
    stem = commit.stem_map().get(anchor.stem)
    if stem is None:
        raise InvalidArgument(f"commit {commit_id[:12]} has no stem {anchor.stem!r}")
    if anchor.start_s is None and anchor.end_s is None:
        return
    start, end = anchor.start_s, anchor.end_s
    if start is None or end is None:
        raise InvalidArgument("a time range needs both start_s and end_s")
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
        raise InvalidArgument("a time range needs 0 <= start_s <= end_s")
    if stem.duration_s <= 0:
        raise InvalidArgument(f"stem {anchor.stem!r} has no recorded duration; a time range cannot be checked")
    if end > stem.duration_s + _DURATION_SLACK_S:
        raise InvalidArgument(f"end_s {end:g} is past the end of stem {anchor.stem!r} ({stem.duration_s:g} s)")


async def add_comment(
    conn: AsyncConnection,
    repo: Repository,
    actor: str,
    *,
    body: str,
    commit_id: str = "",
    merge_request_id: str = "",
    parent_id: str = "",
    anchor: Anchor | None = None,
) -> Comment:
    """A new thread on a commit of ``repo`` (or on a merge request into it), or a reply to a thread."""
    body = check_body(body)
    if parent_id:
        if anchor is not None:
            raise InvalidArgument("a reply cannot carry an anchor (the thread's first comment holds it)")
        parent = await load_comment(conn, repo, parent_id)
        root_id = parent.parent_id or parent.id
        commit_id, merge_request_id = parent.commit_id, parent.merge_request_id
    else:
        root_id = ""
        if merge_request_id:
            if not is_id(merge_request_id):
                raise NotFound(f"merge request {merge_request_id[:64]!r} not found")
            mr = (
                await conn.execute(
                    text("SELECT source_head FROM merge_requests WHERE id = :id AND target_repo_id = :r"),
                    {"id": merge_request_id, "r": repo.id},
                )
            ).first()
            if mr is None:
                raise NotFound(f"merge request {merge_request_id} not found")
            # The proposed commit may live only in the source fork; the request makes it visible here.
            commit_id = commit_id or mr.source_head
            if commit_id != mr.source_head:
                await get_commit(conn, repo, commit_id)
        else:
            if not commit_id:
                raise InvalidArgument("commit_id (or merge_request_id, or parent_id) is required")
            await get_commit(conn, repo, commit_id)
        if anchor is not None:
            await _check_anchor(conn, repo, commit_id, anchor)
    cid = uuid.uuid4().hex
    await conn.execute(
        text(
            "INSERT INTO comments (id, repo_id, commit_id, merge_request_id, parent_id, author_id, body, stem, "
            "start_s, end_s) VALUES (:id, :r, :c, :mr, :p, :a, :b, :stem, :s, :e)"
        ),
        {
            "id": cid,
            "r": repo.id,
            "c": commit_id,
            "mr": merge_request_id or None,
            "p": root_id or None,
            "a": actor,
            "b": body,
            "stem": anchor.stem if anchor else None,
            "s": anchor.start_s if anchor else None,
            "e": anchor.end_s if anchor else None,
        },
    )
    await feed.record(
        conn,
        repo.id,
        actor,
        "comment_reply" if root_id else "comment",
        summary=body[:140],
        commit_id=commit_id,
        comment_id=cid,
        merge_request_id=merge_request_id,
    )
    return await load_comment(conn, repo, cid)


async def list_comments(
    conn: AsyncConnection,
    repo: Repository,
    *,
    commit_id: str = "",
    merge_request_id: str = "",
    page_size: int = 0,
    page_token: str = "",
) -> tuple[list[Comment], str]:
    """Comments of a commit, of a merge request, or (neither given) of the whole repository, oldest
    first (threads: group replies by ``parent_id``)."""
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative")
    n = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    after = 0
    if page_token:
        seq = decode_token(page_token).get("c")
        if not isinstance(seq, int):
            raise InvalidArgument("malformed page token")
        after = seq
    if merge_request_id:
        where, params = "c.merge_request_id = :mr AND c.repo_id = :r", {"mr": merge_request_id}
    elif commit_id:
        await get_commit(conn, repo, commit_id)
        where, params = "c.repo_id = :r AND c.commit_id = :c", {"c": commit_id}
    else:  # the whole repository's discussion
        where, params = "c.repo_id = :r", {}
    rows = (
        await conn.execute(
            text(_SELECT + f" WHERE {where} AND c.seq > :after ORDER BY c.seq LIMIT :n"),
            {**params, "r": repo.id, "after": after, "n": n + 1},
        )
    ).all()
    out = [_comment(r) for r in rows[:n]]
    return out, (encode_token({"c": out[-1].seq}) if len(rows) > n else "")


async def edit_comment(conn: AsyncConnection, repo: Repository, actor: str, comment_id: str, body: str) -> Comment:
    body = check_body(body)
    c = await load_comment(conn, repo, comment_id, lock=True)
    if c.author_id != actor:
        raise PermissionDenied("only the author may edit a comment")
    if c.deleted:
        raise FailedPrecondition("a deleted comment cannot be edited")
    await conn.execute(
        text("UPDATE comments SET body = :b, updated_at = now() WHERE id = :id"), {"b": body, "id": comment_id}
    )
    return await load_comment(conn, repo, comment_id)


async def delete_comment(conn: AsyncConnection, repo: Repository, actor: str, comment_id: str) -> Comment:
    """The author, or the repository's owner (moderation), blanks a comment; its replies stay."""
    c = await load_comment(conn, repo, comment_id, lock=True)
    if c.author_id != actor and repo.role < Role.OWNER:
        raise PermissionDenied("only the author or the repository owner may delete a comment")
    await conn.execute(
        text("UPDATE comments SET body = '', deleted = true, updated_at = now() WHERE id = :id"), {"id": comment_id}
    )
    return await load_comment(conn, repo, comment_id)


async def resolve_comment(
    conn: AsyncConnection, repo: Repository, actor: str, comment_id: str, resolved: bool
) -> Comment:
    """Thread roots only; by the thread's author, the merge request's author, or a writer."""
    c = await load_comment(conn, repo, comment_id, lock=True)
    if c.parent_id:
        raise InvalidArgument("resolve the thread's first comment, not a reply")
    allowed = c.author_id == actor or repo.role >= Role.WRITE
    if not allowed and c.merge_request_id:
        author = (
            await conn.execute(text("SELECT author_id FROM merge_requests WHERE id = :id"), {"id": c.merge_request_id})
        ).scalar()
        allowed = author == actor
    if not allowed:
        raise PermissionDenied("only the thread's author or a writer may resolve it")
    if c.resolved != resolved:
        await conn.execute(
            text("UPDATE comments SET resolved = :v, resolved_by = :a, updated_at = now() WHERE id = :id"),
            {"v": resolved, "a": actor if resolved else None, "id": comment_id},
        )
        await feed.record(
            conn,
            repo.id,
            actor,
            "comment_resolved" if resolved else "comment_unresolved",
            commit_id=c.commit_id,
            comment_id=c.id,
            merge_request_id=c.merge_request_id,
        )
    return await load_comment(conn, repo, comment_id)
