"""Review: comments (threads, optional stem + time anchor), merge requests, reviews, activity feed.

Everything hangs off a repository with ON DELETE CASCADE, so a deleted repository takes its
comments, requests, reviews and events with it. ``activity`` is an append-only log ordered by
``seq`` (keyset pages); branch and tag changes are recorded by a trigger on ``refs``, so every
path that moves a ref (commit, merge, revert, branch/tag calls, forks) shows up without each
caller remembering to log it. Reviews are rows too (one per verdict, never updated), so
concurrent reviewers cannot overwrite each other's state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(32)
SHA = sa.String(64, collation="C")
NOW = sa.text("now()")

_REF_TRIGGER = """
CREATE FUNCTION beatflow_ref_activity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    who varchar(32) := NULLIF(current_setting('beatflow.actor', true), '');
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A ref removed with its repository is not news (and the row is gone).
        IF NOT EXISTS (SELECT 1 FROM repositories WHERE id = OLD.repo_id) THEN
            RETURN NULL;
        END IF;
        INSERT INTO activity (repo_id, actor_id, kind, ref_name, commit_id, old_commit_id)
        VALUES (OLD.repo_id, who, OLD.kind || '_deleted', OLD.name, NULL, OLD.commit_id);
        RETURN NULL;
    END IF;
    IF who IS NULL THEN
        SELECT author_id INTO who FROM commits WHERE id = NEW.commit_id;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO activity (repo_id, actor_id, kind, ref_name, commit_id, old_commit_id)
        VALUES (NEW.repo_id, who, NEW.kind || '_created', NEW.name, NEW.commit_id, NULL);
    ELSIF NEW.commit_id IS DISTINCT FROM OLD.commit_id OR NEW.name <> OLD.name THEN
        INSERT INTO activity (repo_id, actor_id, kind, ref_name, commit_id, old_commit_id)
        VALUES (NEW.repo_id, who, CASE WHEN NEW.name <> OLD.name THEN 'branch_renamed' ELSE 'push' END,
                NEW.name, NEW.commit_id, OLD.commit_id);
    END IF;
    RETURN NULL;
END
$$
"""
_CREATE_TRIGGER = """
CREATE TRIGGER refs_activity AFTER INSERT OR UPDATE OR DELETE ON refs
FOR EACH ROW EXECUTE FUNCTION beatflow_ref_activity()
"""


def upgrade() -> None:
    op.create_table(
        "merge_requests",
        sa.Column("id", ID, primary_key=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("target_repo_id", ID, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target_branch", sa.String(200), nullable=False),
        # The source may be a fork; deleting it closes nothing by itself (the request keeps its
        # last evaluated head, which cannot be merged any more once the source is gone).
        sa.Column("source_repo_id", ID, sa.ForeignKey("repositories.id", ondelete="SET NULL"), nullable=True),
        sa.Column("source_branch", sa.String(200), nullable=False),
        sa.Column("author_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.String(8), nullable=False, server_default="open"),
        # Heads at the last evaluation (what reviewers saw), and its verdict.
        sa.Column("source_head", SHA, nullable=False),
        sa.Column("target_head", SHA, nullable=False),
        sa.Column("conflicts", sa.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        sa.Column("merge_commit_id", SHA, nullable=True),
        sa.Column("merged_by", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("target_repo_id", "number", name="uq_merge_requests_number"),
        sa.CheckConstraint("state IN ('open', 'merged', 'closed')", name="ck_merge_requests_state"),
    )
    op.create_index("ix_merge_requests_source", "merge_requests", ["source_repo_id"])
    op.create_table(
        "comments",
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
    )
    op.create_index("ix_comments_commit", "comments", ["repo_id", "commit_id", "seq"])
    op.create_index(
        "ix_comments_merge_request",
        "comments",
        ["merge_request_id", "seq"],
        postgresql_where=sa.text("merge_request_id IS NOT NULL"),
    )
    op.create_index("ix_comments_parent", "comments", ["parent_id"], postgresql_where=sa.text("parent_id IS NOT NULL"))
    op.create_table(
        "reviews",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("merge_request_id", ID, sa.ForeignKey("merge_requests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reviewer_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("source_head", SHA, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("verdict IN ('approve', 'request_changes', 'comment')", name="ck_reviews_verdict"),
    )
    op.create_index("ix_reviews_request", "reviews", ["merge_request_id", "reviewer_id", "seq"])
    op.create_table(
        "activity",
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
    )
    op.create_index("ix_activity_repo", "activity", ["repo_id", sa.text("seq DESC")])
    op.execute(_REF_TRIGGER)
    op.execute(_CREATE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS refs_activity ON refs")
    op.execute("DROP FUNCTION IF EXISTS beatflow_ref_activity()")
    for table in ("activity", "reviews", "comments", "merge_requests"):
        op.drop_table(table)
