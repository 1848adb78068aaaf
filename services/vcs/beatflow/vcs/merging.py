"""Diff, merge (fast-forward or three-way at stem level) and revert."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import FailedPrecondition, InvalidArgument, NotFound
from beatflow.vcs import history
from beatflow.vcs.commits import (
    branch_head,
    build_commit,
    commit_onto_branch,
    load_commits,
    move_branch,
    resolve,
    stale_error,
)
from beatflow.vcs.model import Commit, Diff, MergeOutcome, Metadata, Repository, Strategy
from beatflow.vcs.names import check_ref_name, check_stem_name, is_commit_id
from beatflow.vcs.stemmerge import diff_commits, merge_metadata, merge_mixdown, merge_stems, virtual_base


async def diff(conn: AsyncConnection, repo: Repository, base: str, head: str) -> Diff:
    base_id = await resolve(conn, repo, base)
    head_id = await resolve(conn, repo, head)
    commits = await load_commits(conn, [base_id, head_id], repo.id)
    return diff_commits(commits[base_id], commits[head_id])


async def _head_checked(conn: AsyncConnection, repo: Repository, branch: str, expected: str) -> str:
    check_ref_name(branch, "branch")
    head = await branch_head(conn, repo.id, branch)
    if head is None:
        raise NotFound(f"branch {branch!r} not found")
    if expected and expected != head:
        if not is_commit_id(expected):
            raise InvalidArgument(f"expected_head {expected[:80]!r} is not a commit id")
        raise stale_error(branch, expected, head)  # names the current head, as a commit's refusal does
    return head


async def merge(
    conn: AsyncConnection,
    repo: Repository,
    actor: str,
    actor_username: str,
    *,
    into_branch: str,
    from_ref: str,
    expected_head: str,
    message: str,
    default: Strategy,
    per_stem: Mapping[str, Strategy],
    no_fast_forward: bool,
    dry_run: bool,
) -> MergeOutcome:
    into = into_branch or repo.default_branch
    if not from_ref:
        raise InvalidArgument("from_ref is required")
    for name in per_stem:
        check_stem_name(name)
    ours_id = await _head_checked(conn, repo, into, expected_head)
    theirs_id = await resolve(conn, repo, from_ref)
    bases = await history.merge_bases(conn, ours_id, theirs_id)
    out = MergeOutcome(merge_bases=bases, dry_run=dry_run)
    if theirs_id in bases:
        out.up_to_date = True
        out.commit = (await load_commits(conn, [ours_id], repo.id))[ours_id]
        return out
    if ours_id in bases and not no_fast_forward:
        if not dry_run:
            await move_branch(conn, repo.id, into, ours_id, theirs_id)
        out.merged = not dry_run
        out.fast_forward = True
        out.commit = (await load_commits(conn, [theirs_id], repo.id))[theirs_id]
        return out
    commits = await load_commits(conn, [ours_id, theirs_id, *bases], repo.id)
    ours, theirs = commits[ours_id], commits[theirs_id]
    base_stems, base_meta, base_mix = virtual_base([commits[b] for b in bases])
    stems, conflicts = merge_stems(base_stems, ours.stem_map(), theirs.stem_map(), default, per_stem)
    out.conflicts = conflicts
    if conflicts:
        return out
    commit = build_commit(
        parents=[ours_id, theirs_id],
        parent_generations=[ours.generation, theirs.generation],
        stems=stems.values(),
        mixdown_blob=merge_mixdown(base_mix, ours.mixdown_blob, theirs.mixdown_blob),
        metadata=merge_metadata(base_meta, ours.metadata, theirs.metadata, default),
        author_id=actor,
        author_username=actor_username,
        message=message or f"Merge {from_ref} into {into}",
        repo_id=repo.id,
    )
    out.commit = commit
    if not dry_run:
        await commit_onto_branch(conn, repo, actor, into, ours_id, commit, [ours, theirs])
        out.merged = True
    return out


async def revert(
    conn: AsyncConnection,
    repo: Repository,
    actor: str,
    actor_username: str,
    *,
    branch: str,
    commit_id: str,
    expected_head: str,
    message: str,
) -> Commit:
    """A new commit on ``branch`` undoing ``commit_id``'s changes (against its first parent) by a three-way merge."""
    branch = branch or repo.default_branch
    head_id = await _head_checked(conn, repo, branch, expected_head)
    target_id = await resolve(conn, repo, commit_id)
    target = (await load_commits(conn, [target_id], repo.id))[target_id]
    ids = [head_id, *target.parent_ids[:1]]
    commits = await load_commits(conn, ids, repo.id)
    head = commits[head_id]
    parent = commits[target.parent_ids[0]] if target.parent_ids else None
    stems, conflicts = merge_stems(target.stem_map(), head.stem_map(), parent.stem_map() if parent else {})
    if conflicts:
        names = ", ".join(c.name for c in conflicts)
        raise FailedPrecondition(f"cannot revert {target_id[:12]}: stems changed since then conflict: {names}")
    meta = merge_metadata(target.metadata, head.metadata, parent.metadata if parent else Metadata(), Strategy.OURS)
    mix = merge_mixdown(target.mixdown_blob, head.mixdown_blob, parent.mixdown_blob if parent else "")
    if stems == head.stem_map() and meta == head.metadata and mix == head.mixdown_blob:
        raise FailedPrecondition(f"nothing to revert: {branch!r} already lacks the changes of {target_id[:12]}")
    first_line = target.message.splitlines()[0] if target.message else target_id[:12]
    commit = build_commit(
        parents=[head_id],
        parent_generations=[head.generation],
        stems=stems.values(),
        mixdown_blob=mix,
        metadata=meta,
        author_id=actor,
        author_username=actor_username,
        message=message or f'Revert "{first_line}"\n\nThis reverts commit {target_id}.',
        repo_id=repo.id,
    )
    return await commit_onto_branch(conn, repo, actor, branch, head_id, commit, [head])
