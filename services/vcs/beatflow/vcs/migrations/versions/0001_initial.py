"""Initial schema: users, repositories, collaborators, commits shared by fork families, refs, blobs.

Commits are content-addressed rows stored once (``commits`` + ``commit_stems``);
a repository holds commits through ``repo_commits`` (a fork copies those rows,
never a commit or a blob). ``generation`` (root 1, else 1 + max over parents)
orders history and bounds graph walks.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)
SHA = sa.String(64, collation="C")
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, primary_key=True),
        sa.Column("username", sa.String(39), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_table(
        "repositories",
        sa.Column("id", ID, primary_key=True),
        # Compact internal key for the (large) commit membership table.
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("owner_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("visibility", sa.SmallInteger, nullable=False),
        sa.Column("default_branch", sa.String(200), nullable=False),
        sa.Column("forked_from_id", ID, sa.ForeignKey("repositories.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("owner_id", "name", name="uq_repositories_owner_name"),
        sa.CheckConstraint("visibility IN (1, 2)", name="ck_repositories_visibility"),
    )
    op.create_index(
        "ix_repositories_public", "repositories", ["created_at", "id"], postgresql_where=sa.text("visibility = 2")
    )
    op.create_index("ix_repositories_forked_from", "repositories", ["forked_from_id"])
    op.create_table(
        "collaborators",
        sa.Column("repo_id", ID, sa.ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.SmallInteger, nullable=False),
        sa.CheckConstraint("role IN (1, 2)", name="ck_collaborators_role"),
    )
    op.create_index("ix_collaborators_user", "collaborators", ["user_id"])
    op.create_table(
        "commits",
        sa.Column("id", SHA, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("parent_ids", postgresql.ARRAY(SHA), nullable=False),
        sa.Column("author_id", ID, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("timestamp", sa.Float(53), nullable=False),
        sa.Column("mixdown_blob", SHA, nullable=True),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.CheckConstraint("generation >= 1", name="ck_commits_generation"),
    )
    op.create_index(
        "ix_commits_mixdown", "commits", ["mixdown_blob"], postgresql_where=sa.text("mixdown_blob IS NOT NULL")
    )
    op.create_table(
        "commit_stems",
        sa.Column("commit_id", SHA, sa.ForeignKey("commits.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("blob_key", SHA, nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("duration_s", sa.Float(53), nullable=False),
    )
    op.create_index("ix_commit_stems_blob", "commit_stems", ["blob_key"])
    # Membership on the compact keys (16-byte rows and index entries: a fork copies one row per
    # commit). No foreign keys: a key check per row (locking the repository row and every commit
    # row) would cost more than the copy. Repository deletion removes its rows itself; commits
    # are deleted only when no repository holds them; forks and repository deletion serialize on
    # the source repository's row (see repos.py).
    op.create_table(
        "repo_commits",
        sa.Column("repo_seq", sa.BigInteger, primary_key=True),
        sa.Column("commit_seq", sa.BigInteger, primary_key=True),
    )
    op.create_index("ix_repo_commits_commit", "repo_commits", ["commit_seq"])
    op.create_table(
        "refs",
        sa.Column("repo_id", ID, sa.ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(6), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column(
            "commit_id",
            SHA,
            sa.ForeignKey("commits.id", deferrable=True, initially="DEFERRED"),
            nullable=False,
        ),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("kind IN ('branch', 'tag')", name="ck_refs_kind"),
    )
    op.create_index("ix_refs_commit", "refs", ["commit_id"])
    op.create_table(
        "blobs",
        sa.Column("key", SHA, primary_key=True),
        sa.Column("uploader_id", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=False, server_default="application/octet-stream"),
        sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        # Set by the garbage collector when it deletes the bytes; cleared by a new registration.
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "blob_owners",
        sa.Column("key", SHA, sa.ForeignKey("blobs.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    )


def downgrade() -> None:
    for table in (
        "blob_owners",
        "blobs",
        "refs",
        "repo_commits",
        "commit_stems",
        "commits",
        "collaborators",
        "repositories",
        "users",
    ):
        op.drop_table(table)
