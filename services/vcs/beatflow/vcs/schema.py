"""The vcs schema at head, as SQLAlchemy Core tables: where a reader finds it.

The queries stay hand-written SQL (see the service README for why); these
tables are the reference for what they query. Alembic migrations remain the
history that builds the schema, and a test migrates an empty database and
checks the result equals this metadata, so the two cannot drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

ID = sa.String(32)
SHA = sa.String(64, collation="C")  # SHA-256 hex: commit ids and blob keys
NOW = sa.text("now()")

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("username", sa.String(39), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("uq_users_username_lower", sa.text("lower(username)"), unique=True),
)

repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("id", ID, primary_key=True),
    # Compact internal key for the (large) commit membership table.
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
    sa.Column("owner_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("visibility", sa.SmallInteger, nullable=False),  # 1 private, 2 public
    sa.Column("default_branch", sa.String(200), nullable=False),
    sa.Column("forked_from_id", ID, sa.ForeignKey("repositories.id", ondelete="SET NULL"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("owner_id", "name", name="uq_repositories_owner_name"),
    sa.CheckConstraint("visibility IN (1, 2)", name="ck_repositories_visibility"),
    sa.Index("ix_repositories_public", "created_at", "id", postgresql_where=sa.text("visibility = 2")),
    sa.Index("ix_repositories_forked_from", "forked_from_id"),
)

collaborators = sa.Table(
    "collaborators",
    metadata,
    sa.Column("repo_id", ID, sa.ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.SmallInteger, nullable=False),  # 1 read, 2 write (the owner is repositories.owner_id)
    sa.CheckConstraint("role IN (1, 2)", name="ck_collaborators_role"),
    sa.Index("ix_collaborators_user", "user_id"),
)

# Content-addressed, stored once and shared by every repository of a fork family.
commits = sa.Table(
    "commits",
    metadata,
    sa.Column("id", SHA, primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
    sa.Column("parent_ids", postgresql.ARRAY(SHA), nullable=False),
    sa.Column("author_id", ID, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("timestamp", sa.Float(53), nullable=False),
    sa.Column("mixdown_blob", SHA, nullable=True),
    sa.Column("metadata", postgresql.JSONB, nullable=False),  # Metadata.canonical()
    sa.Column("generation", sa.Integer, nullable=False),  # root 1, else 1 + max over parents
    sa.CheckConstraint("generation >= 1", name="ck_commits_generation"),
    sa.Index("ix_commits_mixdown", "mixdown_blob", postgresql_where=sa.text("mixdown_blob IS NOT NULL")),
)

commit_stems = sa.Table(
    "commit_stems",
    metadata,
    sa.Column("commit_id", SHA, sa.ForeignKey("commits.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("blob_key", SHA, nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("duration_s", sa.Float(53), nullable=False),
    sa.Index("ix_commit_stems_blob", "blob_key"),
)

# Which repository holds which commit, on the compact keys; no foreign keys (see 0001).
repo_commits = sa.Table(
    "repo_commits",
    metadata,
    sa.Column("repo_seq", sa.BigInteger, primary_key=True),
    sa.Column("commit_seq", sa.BigInteger, primary_key=True),
    sa.Index("ix_repo_commits_commit", "commit_seq"),
)

refs = sa.Table(
    "refs",
    metadata,
    sa.Column("repo_id", ID, sa.ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(6), primary_key=True),  # 'branch' | 'tag'
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("commit_id", SHA, sa.ForeignKey("commits.id", deferrable=True, initially="DEFERRED"), nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("kind IN ('branch', 'tag')", name="ck_refs_kind"),
    sa.Index("ix_refs_commit", "commit_id"),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("key", SHA, primary_key=True),
    sa.Column("uploader_id", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("content_type", sa.String(100), nullable=False, server_default="application/octet-stream"),
    sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    # Set by the garbage collector when it deletes the bytes; cleared by a new registration.
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
)

blob_owners = sa.Table(
    "blob_owners",
    metadata,
    sa.Column("key", SHA, sa.ForeignKey("blobs.key", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

# Review (migration 0002): everything cascades with its repository. Branch and tag changes reach
# ``activity`` through the ``refs_activity`` trigger (see the migration), not through callers.
merge_requests = sa.Table(
    "merge_requests",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("target_repo_id", ID, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    sa.Column("target_branch", sa.String(200), nullable=False),
    sa.Column("source_repo_id", ID, sa.ForeignKey("repositories.id", ondelete="SET NULL"), nullable=True),
    sa.Column("source_branch", sa.String(200), nullable=False),
    sa.Column("author_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("state", sa.String(8), nullable=False, server_default="open"),
    # Heads at the last evaluation (what reviewers saw), and its verdict.
    sa.Column("source_head", SHA, nullable=False),
    sa.Column("target_head", SHA, nullable=False),
    sa.Column("conflicts", postgresql.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
    sa.Column("merge_commit_id", SHA, nullable=True),
    sa.Column("merged_by", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("target_repo_id", "number", name="uq_merge_requests_number"),
    sa.CheckConstraint("state IN ('open', 'merged', 'closed')", name="ck_merge_requests_state"),
    sa.Index("ix_merge_requests_source", "source_repo_id"),
)

comments = sa.Table(
    "comments",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
    sa.Column("repo_id", ID, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    sa.Column("commit_id", SHA, nullable=False),
    sa.Column("merge_request_id", ID, sa.ForeignKey("merge_requests.id", ondelete="CASCADE"), nullable=True),
    sa.Column("parent_id", ID, sa.ForeignKey("comments.id", ondelete="CASCADE"), nullable=True),
    sa.Column("author_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("stem", sa.String(64), nullable=True),
    sa.Column("start_s", sa.Float(53), nullable=True),
    sa.Column("end_s", sa.Float(53), nullable=True),
    sa.Column("resolved", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("resolved_by", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint(
        "(start_s IS NULL) = (end_s IS NULL) AND (start_s IS NULL OR (stem IS NOT NULL AND 0 <= start_s "
        "AND start_s <= end_s))",
        name="ck_comments_range",
    ),
    sa.Index("ix_comments_commit", "repo_id", "commit_id", "seq"),
    sa.Index(
        "ix_comments_merge_request", "merge_request_id", "seq", postgresql_where=sa.text("merge_request_id IS NOT NULL")
    ),
    sa.Index("ix_comments_parent", "parent_id", postgresql_where=sa.text("parent_id IS NOT NULL")),
)

# One row per verdict, never updated: concurrent reviewers cannot overwrite each other.
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("merge_request_id", ID, sa.ForeignKey("merge_requests.id", ondelete="CASCADE"), nullable=False),
    sa.Column("reviewer_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False, server_default=""),
    sa.Column("source_head", SHA, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("verdict IN ('approve', 'request_changes', 'comment')", name="ck_reviews_verdict"),
    sa.Index("ix_reviews_request", "merge_request_id", "reviewer_id", "seq"),
)

# Append-only event log, ordered by seq (keyset pages).
activity = sa.Table(
    "activity",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("repo_id", ID, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    sa.Column("actor_id", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("ref_name", sa.String(200), nullable=True),
    sa.Column("commit_id", SHA, nullable=True),
    sa.Column("old_commit_id", SHA, nullable=True),
    sa.Column("comment_id", ID, nullable=True),
    sa.Column("merge_request_id", ID, nullable=True),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("ix_activity_repo", "repo_id", sa.text("seq DESC")),
)
