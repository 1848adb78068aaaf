"""Repositories, collaborators and forks."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from beatflow.vcs.model import Collaborator, Repository, Role, Visibility
from beatflow.vcs.names import check_ref_name, check_repo_name
from beatflow.vcs.page_tokens import decode_token, encode_token
from beatflow.vcs.repo_access import READABLE, REPO_SELECT, load_repo, repo_from_row, require_user

MAX_DESCRIPTION = 2000


async def _insert_repo(
    conn: AsyncConnection,
    *,
    owner_id: str,
    name: str,
    description: str,
    visibility: Visibility,
    default_branch: str,
    forked_from_id: str | None = None,
) -> str:
    repo_id = uuid.uuid4().hex
    try:
        async with conn.begin_nested():
            await conn.execute(
                text(
                    "INSERT INTO repositories "
                    "(id, owner_id, name, description, visibility, default_branch, forked_from_id) "
                    "VALUES (:id, :owner, :name, :descr, :vis, :branch, :fork)"
                ),
                {
                    "id": repo_id,
                    "owner": owner_id,
                    "name": name,
                    "descr": description,
                    "vis": int(visibility),
                    "branch": default_branch,
                    "fork": forked_from_id,
                },
            )
    except IntegrityError:
        raise AlreadyExists(f"you already have a repository named {name!r}") from None
    return repo_id


_PRIVATE_OF_OTHERS = """
WITH RECURSIVE chain(id, owner_id, visibility, forked_from_id) AS (
    SELECT id, owner_id, visibility, forked_from_id FROM repositories WHERE id = :src
  UNION
    SELECT r.id, r.owner_id, r.visibility, r.forked_from_id
    FROM chain JOIN repositories r ON r.id = chain.forked_from_id
)
SELECT EXISTS (SELECT 1 FROM chain WHERE visibility = 1 AND owner_id <> :actor)
"""


async def _check_publish(conn: AsyncConnection, actor: str, source_id: str) -> None:
    """Refuse publishing a fork of ``source_id`` when it (or what it was forked from) is another's private work."""
    if (await conn.execute(text(_PRIVATE_OF_OTHERS), {"src": source_id, "actor": actor})).scalar():
        raise FailedPrecondition("only the owner may publish a fork of a private repository")


async def create_repository(
    conn: AsyncConnection, actor: str, name: str, description: str, visibility: Visibility, default_branch: str
) -> Repository:
    await require_user(conn, actor)
    check_repo_name(name)
    check_ref_name(default_branch or "main", "branch")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description longer than {MAX_DESCRIPTION} characters")
    repo_id = await _insert_repo(
        conn,
        owner_id=actor,
        name=name,
        description=description,
        visibility=visibility,
        default_branch=default_branch or "main",
    )
    return await load_repo(conn, repo_id, actor)


async def list_repositories(
    conn: AsyncConnection, actor: str, page_size: int, page_token: str
) -> tuple[list[Repository], str]:
    """Repositories the actor can read, newest first, keyset-paginated on (created_at, id)."""
    size = 50 if page_size <= 0 else min(page_size, 500)
    params: dict[str, object] = {"actor": actor, "n": size + 1}
    where = f"WHERE {READABLE}"
    if page_token:
        tok = decode_token(page_token)
        try:
            params["t"], params["i"] = float(tok["t"]), str(tok["i"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument("malformed page token") from None
        where += " AND (EXTRACT(EPOCH FROM r.created_at)::float8, r.id) < (:t, :i)"
    sql = REPO_SELECT + f" {where} ORDER BY EXTRACT(EPOCH FROM r.created_at)::float8 DESC, r.id DESC LIMIT :n"
    rows = (await conn.execute(text(sql), params)).all()
    repos = [repo_from_row(r) for r in rows[:size]]
    token = ""
    if len(rows) > size:
        last = repos[-1]
        token = encode_token({"t": last.created_at, "i": last.id})
    return repos, token


async def update_repository(
    conn: AsyncConnection,
    actor: str,
    repo_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    visibility: Visibility | None = None,
    default_branch: str | None = None,
) -> Repository:
    """Owner-only changes to name, description, visibility and default branch (None: unchanged)."""
    repo = await load_repo(conn, repo_id, actor, Role.OWNER)
    if visibility == Visibility.PUBLIC and repo.visibility != Visibility.PUBLIC and repo.forked_from_id:
        await _check_publish(conn, actor, repo.forked_from_id)
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = check_repo_name(name)
    if description is not None:
        if len(description) > MAX_DESCRIPTION:
            raise InvalidArgument(f"description longer than {MAX_DESCRIPTION} characters")
        values["description"] = description
    if visibility is not None:
        values["visibility"] = int(visibility)
    if default_branch is not None:
        values["default_branch"] = check_ref_name(default_branch, "branch")
    if values:
        sets = ", ".join(f"{col} = :{col}" for col in values)
        try:
            async with conn.begin_nested():
                await conn.execute(text(f"UPDATE repositories SET {sets} WHERE id = :id"), {**values, "id": repo_id})
        except IntegrityError:
            raise AlreadyExists(f"you already have a repository named {name!r}") from None
    return await load_repo(conn, repo_id, actor)


async def delete_repository(conn: AsyncConnection, actor: str, repo_id: str) -> Repository:
    """Delete a repository; commits no other repository holds go with it (their blobs become GC candidates)."""
    repo = await load_repo(conn, repo_id, actor, Role.OWNER)
    # Lock the row first: a fork in flight (which share-locks it) finishes copying before we
    # decide which commits no repository holds any more. Then the refs: a commit in flight
    # (which holds its branch row) commits its membership row first, so the delete below sees it.
    await conn.execute(text("SELECT 1 FROM repositories WHERE id = :r FOR UPDATE"), {"r": repo_id})
    await conn.execute(text("SELECT 1 FROM refs WHERE repo_id = :r FOR UPDATE"), {"r": repo_id})
    ids = (
        (
            await conn.execute(
                text(
                    "DELETE FROM repo_commits WHERE repo_seq = (SELECT seq FROM repositories WHERE id = :r) "
                    "RETURNING commit_seq"
                ),
                {"r": repo_id},
            )
        )
        .scalars()
        .all()
    )
    await conn.execute(text("DELETE FROM repositories WHERE id = :r"), {"r": repo_id})
    if ids:
        await conn.execute(
            text(
                "DELETE FROM commits c WHERE c.seq = ANY(:ids) "
                "AND NOT EXISTS (SELECT 1 FROM repo_commits rc WHERE rc.commit_seq = c.seq) "
                "AND NOT EXISTS (SELECT 1 FROM refs f WHERE f.commit_id = c.id)"
            ),
            {"ids": list(ids)},
        )
    return repo


async def set_collaborator(conn: AsyncConnection, actor: str, repo_id: str, username: str, role: Role) -> Collaborator:
    repo = await load_repo(conn, repo_id, actor, Role.OWNER)
    user = (
        await conn.execute(text("SELECT id, username FROM users WHERE lower(username) = lower(:u)"), {"u": username})
    ).first()
    if user is None:
        raise NotFound(f"user {username[:64]!r} not found")
    if user.id == repo.owner_id:
        raise InvalidArgument("the owner cannot also be a collaborator")
    if role == Role.OWNER:
        raise InvalidArgument("a collaborator's role is read or write; ownership is not transferable here")
    if role == Role.NONE:
        await conn.execute(
            text("DELETE FROM collaborators WHERE repo_id = :r AND user_id = :u"), {"r": repo_id, "u": user.id}
        )
    else:
        await conn.execute(
            text(
                "INSERT INTO collaborators (repo_id, user_id, role) VALUES (:r, :u, :role) "
                "ON CONFLICT (repo_id, user_id) DO UPDATE SET role = EXCLUDED.role"
            ),
            {"r": repo_id, "u": user.id, "role": int(role)},
        )
    return Collaborator(user.id, user.username, role)


async def list_collaborators(conn: AsyncConnection, actor: str, repo_id: str) -> list[Collaborator]:
    await load_repo(conn, repo_id, actor, Role.READ)
    rows = (
        await conn.execute(
            text(
                "SELECT u.id, u.username, c.role FROM collaborators c JOIN users u ON u.id = c.user_id "
                "WHERE c.repo_id = :r ORDER BY u.username"
            ),
            {"r": repo_id},
        )
    ).all()
    return [Collaborator(r.id, r.username, Role(r.role)) for r in rows]


async def fork(conn: AsyncConnection, actor: str, repo_id: str, name: str, visibility: Visibility | None) -> Repository:
    """A new repository of ``actor`` sharing the source's commits (membership rows only) and refs."""
    await require_user(conn, actor)
    source = await load_repo(conn, repo_id, actor, Role.READ)
    locked = await conn.execute(text("SELECT 1 FROM repositories WHERE id = :r FOR SHARE"), {"r": source.id})
    if locked.first() is None:  # deleted meanwhile
        raise NotFound(f"repository {repo_id} not found")
    name = check_repo_name(name or source.name)
    vis = visibility or source.visibility
    if vis == Visibility.PUBLIC:
        await _check_publish(conn, actor, source.id)
    new_id = await _insert_repo(
        conn,
        owner_id=actor,
        name=name,
        description=source.description,
        visibility=vis,
        default_branch=source.default_branch,
        forked_from_id=source.id,
    )
    await conn.execute(
        text(
            "INSERT INTO repo_commits (repo_seq, commit_seq) "
            "SELECT (SELECT seq FROM repositories WHERE id = :new), commit_seq FROM repo_commits "
            "WHERE repo_seq = (SELECT seq FROM repositories WHERE id = :src)"
        ),
        {"new": new_id, "src": source.id},
    )
    await conn.execute(
        text(
            "INSERT INTO refs (repo_id, kind, name, commit_id, message) "
            "SELECT :new, kind, name, commit_id, message FROM refs WHERE repo_id = :src"
        ),
        {"new": new_id, "src": source.id},
    )
    return await load_repo(conn, new_id, actor)
