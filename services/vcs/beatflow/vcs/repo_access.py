"""Who may do what on a repository: owner, collaborators (read/write), anyone on public repos.

A repository the actor cannot read is reported as not found, so private
repositories never reveal that they exist; a readable repository the actor
may not change gives PERMISSION_DENIED.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import NotFound, PermissionDenied, Unauthenticated
from beatflow.vcs.db import fetch
from beatflow.vcs.model import Repository, Role, Visibility

_ID_RE = re.compile(r"^[0-9a-f]{32}$")

REPO_SELECT = """
SELECT r.id, r.owner_id, u.username AS owner_username, r.name, r.description, r.visibility,
       r.default_branch, r.forked_from_id, EXTRACT(EPOCH FROM r.created_at)::float8 AS created_at,
       CASE WHEN r.owner_id = :actor THEN 3 ELSE COALESCE(co.role, 0) END AS role,
       (SELECT au.username FROM users au WHERE au.id = :actor) AS actor_username
FROM repositories r
JOIN users u ON u.id = r.owner_id
LEFT JOIN collaborators co ON co.repo_id = r.id AND co.user_id = :actor
"""

_REPO_BY_ID = REPO_SELECT + " WHERE r.id = :repo"

# SQL predicate: repository ``r`` is readable by :actor.
READABLE = (
    "(r.visibility = 2 OR r.owner_id = :actor OR EXISTS "
    "(SELECT 1 FROM collaborators rc_co WHERE rc_co.repo_id = r.id AND rc_co.user_id = :actor))"
)


def repo_from_row(row: Any) -> Repository:
    role = Role(row.role)
    if row.visibility == Visibility.PUBLIC and role < Role.READ:
        role = Role.READ
    return Repository(
        id=row.id,
        owner_id=row.owner_id,
        owner_username=row.owner_username,
        name=row.name,
        description=row.description,
        visibility=Visibility(row.visibility),
        default_branch=row.default_branch,
        forked_from_id=row.forked_from_id,
        created_at=float(row.created_at),
        role=role,
    )


def is_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


async def load_repo(conn: AsyncConnection, repo_id: str, actor: str, need: Role = Role.READ) -> Repository:
    """The repository as ``actor`` sees it, or NOT_FOUND / PERMISSION_DENIED."""
    return (await _load(conn, repo_id, actor, need))[0]


async def load_repo_as_user(conn: AsyncConnection, repo_id: str, actor: str, need: Role) -> tuple[Repository, str]:
    """:func:`load_repo` for a signed-in actor, with the actor's username (one query)."""
    if not actor:
        raise Unauthenticated("an authenticated user is required")
    repo, username = await _load(conn, repo_id, actor, need)
    if username is None:
        raise Unauthenticated(f"unknown user {actor[:64]!r}")
    return repo, username


async def _load(conn: AsyncConnection, repo_id: str, actor: str, need: Role) -> tuple[Repository, str | None]:
    if not is_id(repo_id):
        raise NotFound(f"repository {repo_id[:64]!r} not found")
    rows = await fetch(conn, _REPO_BY_ID, {"actor": actor, "repo": repo_id})
    row = rows[0] if rows else None
    if row is None:
        raise NotFound(f"repository {repo_id} not found")
    repo = repo_from_row(row)
    if repo.role < Role.READ:
        raise NotFound(f"repository {repo_id} not found")
    if repo.role < need:
        if not actor:
            raise Unauthenticated("sign in to change this repository")
        what = "owner" if need == Role.OWNER else "write"
        raise PermissionDenied(f"{what} access to repository {repo.owner_username}/{repo.name} required")
    return repo, row.actor_username


async def require_user(conn: AsyncConnection, actor: str) -> str:
    """The actor's username; UNAUTHENTICATED when there is no such user."""
    if not actor:
        raise Unauthenticated("an authenticated user is required")
    row = (await conn.execute(text("SELECT username FROM users WHERE id = :id"), {"id": actor})).first()
    if row is None:
        raise Unauthenticated(f"unknown user {actor[:64]!r}")
    return str(row.username)
