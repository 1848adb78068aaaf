"""Activity feed: what happened in a repository, and what is new for a user across repositories.

Events are rows of ``activity`` ordered by ``seq`` (a sequence, so the order is the order of
insertion and pages never skip or repeat an event while new ones arrive). Ref changes are
recorded by a trigger on ``refs`` (migration 0002); comments, reviews and merge requests record
their own events in the same transaction as the change. Pages are keyset pages on ``seq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import InvalidArgument
from beatflow.vcs.model import Repository
from beatflow.vcs.page_tokens import decode_token, encode_token
from beatflow.vcs.repo_access import READABLE

DEFAULT_PAGE = 50
MAX_PAGE = 200


@dataclass(frozen=True)
class Event:
    seq: int
    repo_id: str
    repo_owner: str
    repo_name: str
    actor_id: str
    actor_username: str
    kind: str
    ref_name: str
    commit_id: str
    old_commit_id: str
    comment_id: str
    merge_request_id: str
    summary: str
    created_at: float


async def set_actor(conn: AsyncConnection, actor: str) -> None:
    """Name the actor of this transaction's ref changes (read by the ``refs`` trigger)."""
    await conn.execute(text("SELECT set_config('beatflow.actor', :a, true)"), {"a": actor or ""})


async def record(
    conn: AsyncConnection,
    repo_id: str,
    actor: str,
    kind: str,
    *,
    summary: str = "",
    commit_id: str = "",
    comment_id: str = "",
    merge_request_id: str = "",
    ref_name: str = "",
) -> None:
    await conn.execute(
        text(
            "INSERT INTO activity (repo_id, actor_id, kind, summary, commit_id, comment_id, merge_request_id, "
            "ref_name) VALUES (:r, :a, :k, :s, :c, :cm, :mr, :ref)"
        ),
        {
            "r": repo_id,
            "a": actor or None,
            "k": kind,
            "s": summary[:300],
            "c": commit_id or None,
            "cm": comment_id or None,
            "mr": merge_request_id or None,
            "ref": ref_name or None,
        },
    )


_SELECT = """
SELECT a.seq, a.repo_id, ou.username AS repo_owner, r.name AS repo_name, a.actor_id, au.username AS actor_username,
       a.kind, a.ref_name, a.commit_id, a.old_commit_id, a.comment_id, a.merge_request_id, a.summary,
       EXTRACT(EPOCH FROM a.created_at)::float8 AS created_at
FROM activity a
JOIN repositories r ON r.id = a.repo_id
JOIN users ou ON ou.id = r.owner_id
LEFT JOIN users au ON au.id = a.actor_id
"""


def _event(row: Any) -> Event:
    return Event(
        seq=int(row.seq),
        repo_id=row.repo_id,
        repo_owner=row.repo_owner,
        repo_name=row.repo_name,
        actor_id=row.actor_id or "",
        actor_username=row.actor_username or "",
        kind=row.kind,
        ref_name=row.ref_name or "",
        commit_id=row.commit_id or "",
        old_commit_id=row.old_commit_id or "",
        comment_id=row.comment_id or "",
        merge_request_id=row.merge_request_id or "",
        summary=row.summary,
        created_at=float(row.created_at),
    )


def _cursor(page_size: int, token: str) -> tuple[int, int]:
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative")
    n = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    before = 2**62
    if token:
        data = decode_token(token)
        seq = data.get("feed")
        if not isinstance(seq, int) or seq < 0:
            raise InvalidArgument("malformed page token")
        before = seq
    return n, before


def _page(rows: list[Any], n: int) -> tuple[list[Event], str]:
    events = [_event(r) for r in rows[:n]]
    token = encode_token({"feed": events[-1].seq}) if len(rows) > n else ""
    return events, token


async def repo_feed(conn: AsyncConnection, repo: Repository, page_size: int, token: str) -> tuple[list[Event], str]:
    """Newest first; the token continues below the last event shown."""
    n, before = _cursor(page_size, token)
    rows = (
        await conn.execute(
            text(_SELECT + " WHERE a.repo_id = :r AND a.seq < :before ORDER BY a.seq DESC LIMIT :n"),
            {"r": repo.id, "before": before, "n": n + 1},
        )
    ).all()
    return _page(list(rows), n)


# Repositories a user follows: owned, collaborating on, the upstreams of their forks and the
# forks of their repositories. Public repositories of strangers are not news to everybody.
_FOLLOWED = """
SELECT id FROM repositories WHERE owner_id = :actor
UNION SELECT repo_id FROM collaborators WHERE user_id = :actor
UNION SELECT forked_from_id FROM repositories WHERE owner_id = :actor AND forked_from_id IS NOT NULL
UNION SELECT f.id FROM repositories f JOIN repositories mine ON mine.id = f.forked_from_id AND mine.owner_id = :actor
"""


async def whats_new(conn: AsyncConnection, actor: str, page_size: int, token: str) -> tuple[list[Event], str]:
    """Others' events in the repositories ``actor`` follows and can read, newest first."""
    n, before = _cursor(page_size, token)
    rows = (
        await conn.execute(
            text(
                _SELECT + f" WHERE a.repo_id IN ({_FOLLOWED}) AND {READABLE} "
                "AND a.actor_id IS DISTINCT FROM :actor AND a.seq < :before ORDER BY a.seq DESC LIMIT :n"
            ),
            {"actor": actor, "before": before, "n": n + 1},
        )
    ).all()
    return _page(list(rows), n)
