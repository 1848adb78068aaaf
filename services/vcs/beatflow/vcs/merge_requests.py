"""Merge requests: propose a source branch (possibly in a fork) for a target branch, review, merge.

A request records the heads it was last evaluated at (``source_head``, ``target_head``) and
the stems that conflict there: that is what reviewers saw. Merging checks the branches still
point there; if either moved, the request is re-evaluated and stored (new heads, new
conflicts) and nothing is merged, so a request is never merged blindly against a target that
changed under it. The merge itself is a normal merge commit (never a fast-forward) whose
message names the request; the request then closes as merged. A request whose source is
already contained in its target is closed as merged when it is next evaluated.

Across a fork family commits and blobs are shared; merging a fork's branch makes the source
commits members of the target repository (membership rows only), inside a savepoint that is
rolled back when the merge does not happen, so a private fork never leaks through a refused
merge.

Reviews are appended, never updated (the reviewer's current verdict is their latest row), and
every change of a request bumps its ``version`` under the row lock: parallel reviewers and a
parallel merge cannot lose one another's state.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from beatflow.vcs import feed, history, merging
from beatflow.vcs.commits import branch_head, load_commits
from beatflow.vcs.model import ChangeKind, MergeOutcome, Repository, Role, StemChange, StemConflict, Strategy
from beatflow.vcs.names import check_ref_name
from beatflow.vcs.page_tokens import decode_token, encode_token
from beatflow.vcs.repo_access import is_id, load_repo
from beatflow.vcs.stemmerge import diff_stems, merge_stems, virtual_base

MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
VERDICTS = ("approve", "request_changes", "comment")
STATES = ("open", "merged", "closed")


@dataclass(frozen=True)
class Review:
    reviewer_id: str
    reviewer_username: str
    verdict: str
    body: str
    source_head: str
    created_at: float
    current: bool  # given on the request's current source head


@dataclass(frozen=True)
class MergeRequest:
    id: str
    number: int
    target_repo_id: str
    target_branch: str
    source_repo_id: str
    source_branch: str
    author_id: str
    author_username: str
    title: str
    description: str
    state: str
    source_head: str
    target_head: str
    conflicts: tuple[str, ...]
    merge_commit_id: str
    merged_by: str
    version: int
    created_at: float
    updated_at: float
    reviews: tuple[Review, ...] = ()  # the latest verdict per reviewer


@dataclass
class Evaluation:
    """The request at the branches' current heads: conflicts against the target, stems it changes."""

    source_head: str
    target_head: str
    merge_bases: list[str]
    up_to_date: bool
    conflicts: list[StemConflict] = field(default_factory=list)
    changes: list[StemChange] = field(default_factory=list)


@dataclass
class AcceptOutcome:
    request: MergeRequest
    merged: bool = False
    stale: bool = False  # a head moved: re-evaluated and stored, nothing merged
    merge: MergeOutcome | None = None
    evaluation: Evaluation | None = None


_SELECT = """
SELECT m.id, m.number, m.target_repo_id, m.target_branch, m.source_repo_id, m.source_branch, m.author_id,
       u.username AS author_username, m.title, m.description, m.state, m.source_head, m.target_head, m.conflicts,
       m.merge_commit_id, m.merged_by, m.version,
       EXTRACT(EPOCH FROM m.created_at)::float8 AS created_at, EXTRACT(EPOCH FROM m.updated_at)::float8 AS updated_at
FROM merge_requests m JOIN users u ON u.id = m.author_id
"""


def _request(row: Any, reviews: tuple[Review, ...] = ()) -> MergeRequest:
    return MergeRequest(
        id=row.id,
        number=int(row.number),
        target_repo_id=row.target_repo_id,
        target_branch=row.target_branch,
        source_repo_id=row.source_repo_id or "",
        source_branch=row.source_branch,
        author_id=row.author_id,
        author_username=row.author_username,
        title=row.title,
        description=row.description,
        state=row.state,
        source_head=row.source_head,
        target_head=row.target_head,
        conflicts=tuple(row.conflicts or ()),
        merge_commit_id=row.merge_commit_id or "",
        merged_by=row.merged_by or "",
        version=int(row.version),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        reviews=reviews,
    )


async def _reviews(conn: AsyncConnection, mr_id: str, source_head: str) -> tuple[Review, ...]:
    rows = await conn.execute(
        text(
            "SELECT DISTINCT ON (v.reviewer_id) v.reviewer_id, u.username, v.verdict, v.body, v.source_head, "
            "EXTRACT(EPOCH FROM v.created_at)::float8 AS created_at "
            "FROM reviews v JOIN users u ON u.id = v.reviewer_id WHERE v.merge_request_id = :id "
            "ORDER BY v.reviewer_id, v.seq DESC"
        ),
        {"id": mr_id},
    )
    out = [
        Review(
            r.reviewer_id,
            r.username,
            r.verdict,
            r.body,
            r.source_head,
            float(r.created_at),
            r.source_head == source_head,
        )
        for r in rows
    ]
    return tuple(sorted(out, key=lambda r: r.created_at))


async def load_request(conn: AsyncConnection, repo: Repository, mr_id: str, *, lock: bool = False) -> MergeRequest:
    """A request into ``repo`` by id or by its number (as text)."""
    params: dict[str, object]
    if is_id(mr_id):
        where, params = "m.id = :id", {"id": mr_id}
    elif mr_id.isdigit() and len(mr_id) < 10:
        where, params = "m.number = :n", {"n": int(mr_id)}
    else:
        raise NotFound(f"merge request {mr_id[:64]!r} not found")
    sql = _SELECT + f" WHERE {where} AND m.target_repo_id = :r" + (" FOR UPDATE OF m" if lock else "")
    row = (await conn.execute(text(sql), {**params, "r": repo.id})).first()
    if row is None:
        raise NotFound(f"merge request {mr_id} not found")
    return _request(row, await _reviews(conn, row.id, row.source_head))


async def _fork_root(conn: AsyncConnection, repo_id: str) -> str:
    return str(
        (
            await conn.execute(
                text(
                    "WITH RECURSIVE up(id, parent, depth) AS ("
                    " SELECT id, forked_from_id, 0 FROM repositories WHERE id = :r"
                    " UNION ALL SELECT r.id, r.forked_from_id, up.depth + 1"
                    " FROM up JOIN repositories r ON r.id = up.parent"
                    " WHERE up.depth < 1000) SELECT id FROM up ORDER BY depth DESC LIMIT 1"
                ),
                {"r": repo_id},
            )
        ).scalar()
    )


async def current_heads(conn: AsyncConnection, mr: MergeRequest) -> tuple[str, str]:
    if not mr.source_repo_id:
        raise FailedPrecondition("the source repository of this merge request was deleted")
    source = await branch_head(conn, mr.source_repo_id, mr.source_branch)
    if source is None:
        raise FailedPrecondition(f"source branch {mr.source_branch!r} no longer exists")
    target = await branch_head(conn, mr.target_repo_id, mr.target_branch)
    if target is None:
        raise FailedPrecondition(f"target branch {mr.target_branch!r} no longer exists")
    return source, target


async def evaluate(conn: AsyncConnection, source_head: str, target_head: str) -> Evaluation:
    """What merging ``source_head`` into ``target_head`` would do (no writes; commits are shared rows)."""
    bases = await history.merge_bases(conn, target_head, source_head)
    ev = Evaluation(source_head, target_head, bases, up_to_date=source_head in bases)
    if ev.up_to_date:
        return ev
    commits = await load_commits(conn, [target_head, source_head, *bases])
    base_stems, _, _ = virtual_base([commits[b] for b in bases])
    source = commits[source_head].stem_map()
    _, ev.conflicts = merge_stems(base_stems, commits[target_head].stem_map(), source, Strategy.CONFLICT, {})
    ev.changes = [c for c in diff_stems(base_stems, source) if c.kind != ChangeKind.UNCHANGED]
    return ev


async def _store_evaluation(conn: AsyncConnection, mr_id: str, ev: Evaluation, state: str = "open") -> None:
    await conn.execute(
        text(
            "UPDATE merge_requests SET source_head = :s, target_head = :t, conflicts = :c, state = :state, "
            "version = version + 1, updated_at = now() WHERE id = :id"
        ),
        {"s": ev.source_head, "t": ev.target_head, "c": [c.name for c in ev.conflicts], "state": state, "id": mr_id},
    )


async def open_request(
    conn: AsyncConnection,
    target: Repository,
    actor: str,
    *,
    target_branch: str,
    source_repo_id: str,
    source_branch: str,
    title: str,
    description: str,
) -> MergeRequest:
    """Anyone who can read both repositories may propose (as on public hosts); merging needs write."""
    target_branch = check_ref_name(target_branch or target.default_branch)
    check_ref_name(source_branch, "branch")
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidArgument(f"title must have 1 to {MAX_TITLE} characters")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description longer than {MAX_DESCRIPTION} characters")
    source = (
        target if not source_repo_id or source_repo_id == target.id else await load_repo(conn, source_repo_id, actor)
    )
    if source.id == target.id and source_branch == target_branch:
        # a state, not a malformed request (the target may be the default branch): 409
        raise FailedPrecondition("source and target are the same branch")
    if source.id != target.id and await _fork_root(conn, source.id) != await _fork_root(conn, target.id):
        raise InvalidArgument("source and target repositories are not of one fork family")
    source_head = await branch_head(conn, source.id, source_branch)
    if source_head is None:
        raise NotFound(f"source branch {source_branch!r} not found")
    target_head = await branch_head(conn, target.id, target_branch)
    if target_head is None:
        raise NotFound(f"target branch {target_branch!r} not found")
    ev = await evaluate(conn, source_head, target_head)
    if ev.up_to_date:
        raise FailedPrecondition(f"{target_branch!r} already contains {source_branch!r}: nothing to merge")
    # Numbers are per target repository; the row lock on the repository serialises numbering.
    await conn.execute(text("SELECT 1 FROM repositories WHERE id = :r FOR NO KEY UPDATE"), {"r": target.id})
    dup = (
        await conn.execute(
            text(
                "SELECT number FROM merge_requests WHERE target_repo_id = :t AND target_branch = :tb "
                "AND source_repo_id = :s AND source_branch = :sb AND state = 'open'"
            ),
            {"t": target.id, "tb": target_branch, "s": source.id, "sb": source_branch},
        )
    ).scalar()
    if dup is not None:
        raise AlreadyExists(f"merge request !{dup} already proposes {source_branch!r} for {target_branch!r}")
    mr_id = uuid.uuid4().hex
    try:
        await conn.execute(
            text(
                "INSERT INTO merge_requests (id, number, target_repo_id, target_branch, source_repo_id, source_branch, "
                "author_id, title, description, source_head, target_head, conflicts) VALUES (:id, "
                "(SELECT COALESCE(max(number), 0) + 1 FROM merge_requests WHERE target_repo_id = :t), "
                ":t, :tb, :s, :sb, :a, :title, :d, :sh, :th, :c)"
            ),
            {
                "id": mr_id,
                "t": target.id,
                "tb": target_branch,
                "s": source.id,
                "sb": source_branch,
                "a": actor,
                "title": title,
                "d": description,
                "sh": source_head,
                "th": target_head,
                "c": [c.name for c in ev.conflicts],
            },
        )
    except IntegrityError:  # the target repository was deleted meanwhile
        raise NotFound(f"repository {target.id} not found") from None
    await feed.record(conn, target.id, actor, "merge_request_opened", summary=title, merge_request_id=mr_id)
    return await load_request(conn, target, mr_id)


async def list_requests(
    conn: AsyncConnection, repo: Repository, state: str, page_size: int, page_token: str
) -> tuple[list[MergeRequest], str]:
    """Requests into ``repo``, newest first (keyset on the number)."""
    if state and state not in STATES:
        raise InvalidArgument(f"state must be one of {', '.join(STATES)}")
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative")
    n = min(page_size or 50, 200)
    before = 2**31 - 1  # above any number (an int4 column: 2**31 itself does not bind)
    if page_token:
        v = decode_token(page_token).get("mr")
        if not isinstance(v, int):
            raise InvalidArgument("malformed page token")
        before = v
    rows = (
        await conn.execute(
            text(
                _SELECT + " WHERE m.target_repo_id = :r AND m.number < :before "
                "AND (CAST(:state AS text) = '' OR m.state = :state) ORDER BY m.number DESC LIMIT :n"
            ),
            {"r": repo.id, "before": before, "state": state, "n": n + 1},
        )
    ).all()
    out = [_request(r, await _reviews(conn, r.id, r.source_head)) for r in rows[:n]]
    return out, (encode_token({"mr": out[-1].number}) if len(rows) > n else "")


async def refresh(conn: AsyncConnection, repo: Repository, actor: str, mr_id: str) -> tuple[MergeRequest, Evaluation]:
    """Re-evaluate an open request at the current heads and store it (closes it if already merged)."""
    mr = await load_request(conn, repo, mr_id, lock=True)
    if mr.state != "open":
        source_head, target_head = mr.source_head, mr.target_head
        return mr, Evaluation(source_head, target_head, [], up_to_date=mr.state == "merged")
    source_head, target_head = await current_heads(conn, mr)
    ev = await evaluate(conn, source_head, target_head)
    if (source_head, target_head) != (mr.source_head, mr.target_head) or ev.up_to_date:
        await _store_evaluation(conn, mr.id, ev, "merged" if ev.up_to_date else "open")
        if ev.up_to_date:
            await feed.record(conn, repo.id, actor, "merge_request_merged", summary=mr.title, merge_request_id=mr.id)
    return await load_request(conn, repo, mr.id), ev


async def review(
    conn: AsyncConnection, repo: Repository, actor: str, mr_id: str, verdict: str, body: str
) -> MergeRequest:
    """Readers may review; the author may comment but not approve or block their own request."""
    if verdict not in VERDICTS:
        raise InvalidArgument(f"verdict must be one of {', '.join(VERDICTS)}")
    if len(body) > MAX_DESCRIPTION:
        raise InvalidArgument(f"review body longer than {MAX_DESCRIPTION} characters")
    # The row lock orders this review against merges, closes and other reviews of the request.
    mr = await load_request(conn, repo, mr_id, lock=True)
    if mr.state != "open":
        raise FailedPrecondition(f"merge request !{mr.number} is {mr.state}")
    if mr.author_id == actor and verdict != "comment":
        raise PermissionDenied("the author of a merge request cannot approve or reject it")
    await conn.execute(
        text(
            "INSERT INTO reviews (merge_request_id, reviewer_id, verdict, body, source_head) "
            "VALUES (:id, :a, :v, :b, :h)"
        ),
        {"id": mr.id, "a": actor, "v": verdict, "b": body, "h": mr.source_head},
    )
    await conn.execute(
        text("UPDATE merge_requests SET version = version + 1, updated_at = now() WHERE id = :id"), {"id": mr.id}
    )
    await feed.record(conn, repo.id, actor, f"review_{verdict}", summary=body[:140], merge_request_id=mr.id)
    return await load_request(conn, repo, mr.id)


async def set_state(conn: AsyncConnection, repo: Repository, actor: str, mr_id: str, state: str) -> MergeRequest:
    """Close or reopen: the request's author or a writer of the target."""
    if state not in ("open", "closed"):
        raise InvalidArgument("state must be 'open' or 'closed' (merging is its own call)")
    mr = await load_request(conn, repo, mr_id, lock=True)
    if mr.author_id != actor and repo.role < Role.WRITE:
        raise PermissionDenied("only the author or a writer may close or reopen a merge request")
    if mr.state == "merged":
        raise FailedPrecondition(f"merge request !{mr.number} is merged")
    if mr.state == state:
        return mr
    if state == "open":
        source_head, target_head = await current_heads(conn, mr)
        ev = await evaluate(conn, source_head, target_head)
        if ev.up_to_date:
            raise FailedPrecondition("the target already contains the source: nothing to reopen")
        await _store_evaluation(conn, mr.id, ev, "open")
    else:
        await conn.execute(
            text(
                "UPDATE merge_requests SET state = 'closed', version = version + 1, updated_at = now() WHERE id = :id"
            ),
            {"id": mr.id},
        )
    await feed.record(
        conn,
        repo.id,
        actor,
        f"merge_request_{'reopened' if state == 'open' else 'closed'}",
        summary=mr.title,
        merge_request_id=mr.id,
    )
    return await load_request(conn, repo, mr.id)


_IMPORT_COMMITS = """
WITH RECURSIVE walk(id, seq, parent_ids) AS (
    SELECT c.id, c.seq, c.parent_ids FROM commits c WHERE c.id = :head
      AND NOT EXISTS (SELECT 1 FROM repo_commits rc WHERE rc.repo_seq = :tseq AND rc.commit_seq = c.seq)
  UNION
    SELECT p.id, p.seq, p.parent_ids FROM walk JOIN commits p ON p.id = ANY(walk.parent_ids)
    WHERE NOT EXISTS (SELECT 1 FROM repo_commits rc WHERE rc.repo_seq = :tseq AND rc.commit_seq = p.seq)
)
INSERT INTO repo_commits (repo_seq, commit_seq) SELECT :tseq, seq FROM walk ON CONFLICT DO NOTHING
"""


async def accept(
    conn: AsyncConnection,
    repo: Repository,
    actor: str,
    actor_username: str,
    mr_id: str,
    *,
    default_strategy: Strategy = Strategy.CONFLICT,
    stem_strategies: Mapping[str, Strategy] | None = None,
    message: str = "",
) -> AcceptOutcome:
    """Merge the request as last evaluated, or re-evaluate it when a head has moved (see module doc)."""
    if repo.role < Role.WRITE:
        raise PermissionDenied("write access to the target repository is required to merge")
    mr = await load_request(conn, repo, mr_id, lock=True)
    if mr.state != "open":
        raise FailedPrecondition(f"merge request !{mr.number} is {mr.state}")
    source_head, target_head = await current_heads(conn, mr)
    if (source_head, target_head) != (mr.source_head, mr.target_head):
        ev = await evaluate(conn, source_head, target_head)
        await _store_evaluation(conn, mr.id, ev, "merged" if ev.up_to_date else "open")
        await feed.record(conn, repo.id, actor, "merge_request_updated", summary=mr.title, merge_request_id=mr.id)
        return AcceptOutcome(await load_request(conn, repo, mr.id), stale=True, evaluation=ev)
    source = (
        await conn.execute(
            text("SELECT r.name, u.username FROM repositories r JOIN users u ON u.id = r.owner_id WHERE r.id = :r"),
            {"r": mr.source_repo_id},
        )
    ).one()
    where = mr.source_branch if mr.source_repo_id == repo.id else f"{source.username}/{source.name}:{mr.source_branch}"
    msg = message or f"Merge request !{mr.number}: {mr.title}\n\nMerge {where} into {mr.target_branch}."
    msg += f"\n\nMerge-Request: {mr.id}"
    async with conn.begin_nested() as savepoint:
        if mr.source_repo_id != repo.id:
            tseq = (await conn.execute(text("SELECT seq FROM repositories WHERE id = :r"), {"r": repo.id})).scalar()
            await conn.execute(text(_IMPORT_COMMITS), {"tseq": tseq, "head": source_head})
        out = await merging.merge(
            conn,
            repo,
            actor,
            actor_username,
            into_branch=mr.target_branch,
            from_ref=source_head,
            expected_head=target_head,
            message=msg,
            default=default_strategy,
            per_stem=stem_strategies or {},
            no_fast_forward=True,
            dry_run=False,
        )
        if not out.merged:
            await savepoint.rollback()
    if out.merged and out.commit is not None:
        await conn.execute(
            text(
                "UPDATE merge_requests SET state = 'merged', merge_commit_id = :c, merged_by = :a, "
                "version = version + 1, updated_at = now() WHERE id = :id"
            ),
            {"c": out.commit.id, "a": actor, "id": mr.id},
        )
        await feed.record(
            conn,
            repo.id,
            actor,
            "merge_request_merged",
            summary=mr.title,
            merge_request_id=mr.id,
            commit_id=out.commit.id,
            ref_name=mr.target_branch,
        )
    elif out.up_to_date:
        await _store_evaluation(conn, mr.id, await evaluate(conn, source_head, target_head), "merged")
    return AcceptOutcome(await load_request(conn, repo, mr.id), merged=out.merged, merge=out)
