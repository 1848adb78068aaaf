"""Users: the gateway hashes passwords; vcs stores the hash and hands it back for verification."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import AlreadyExists, InvalidArgument, NotFound
from beatflow.vcs.model import User
from beatflow.vcs.names import check_username

_COLS = "id, username, password_hash, EXTRACT(EPOCH FROM created_at)::float8 AS created_at"


def _user(row: Any) -> User:
    return User(id=row.id, username=row.username, created_at=float(row.created_at))


async def create_user(conn: AsyncConnection, username: str, password_hash: str) -> User:
    check_username(username)
    if len(password_hash) > 1024:
        raise InvalidArgument("password hash longer than 1024 characters")
    try:
        async with conn.begin_nested():
            row = (
                await conn.execute(
                    text(f"INSERT INTO users (id, username, password_hash) VALUES (:id, :u, :h) RETURNING {_COLS}"),
                    {"id": uuid.uuid4().hex, "u": username, "h": password_hash},
                )
            ).one()
    except IntegrityError:
        raise AlreadyExists(f"username {username!r} is taken") from None
    return _user(row)


async def get_credentials(conn: AsyncConnection, user_id: str, username: str) -> tuple[User, str]:
    if user_id:
        row = (await conn.execute(text(f"SELECT {_COLS} FROM users WHERE id = :v"), {"v": user_id})).first()
    elif username:
        row = (
            await conn.execute(text(f"SELECT {_COLS} FROM users WHERE lower(username) = lower(:v)"), {"v": username})
        ).first()
    else:
        raise InvalidArgument("give user_id or username")
    if row is None:
        raise NotFound(f"user {(user_id or username)[:64]!r} not found")
    return _user(row), str(row.password_hash)
