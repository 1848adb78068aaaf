"""Merge requests: open, review, merge with per-stem resolution, stale targets, fork to upstream."""

from __future__ import annotations

import asyncio

import pytest

from beatflow.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from beatflow.vcs.model import Role, Strategy, Visibility


async def _branch(world, name: str, from_ref: str = "main", repo: str = "", actor: str = "") -> None:
    await world.vcs.create_branch(actor or world.alice.id, repo or world.repo.id, name, from_ref)


async def test_lifecycle_open_review_merge_with_resolution_closes_the_request(world) -> None:
    v, repo = world.vcs, world.repo.id
    await world.commit("base", drums="d0", bass="b0")
    await _branch(world, "idea")
    await world.commit("idea drums", branch="idea", drums="d-idea", bass="b-idea")
    main = await world.commit("main drums", drums="d-main")
    await v.set_collaborator(world.alice.id, repo, "bob", Role.WRITE)
    await v.set_collaborator(world.alice.id, repo, "carol", Role.READ)

    mr = await v.open_merge_request(world.carol.id, repo, source_branch="idea", title="Try new drums")
    assert (mr.number, mr.state, mr.conflicts) == (1, "open", ("drums",))
    assert mr.target_head == main.id
    _, ev = await v.get_merge_request(world.carol.id, repo, mr.id)
    assert ev is not None and [c.name for c in ev.conflicts] == ["drums"]
    assert {c.name for c in ev.changes} == {"drums", "bass"}
    with pytest.raises(AlreadyExists):
        await v.open_merge_request(world.bob.id, repo, source_branch="idea", title="again")

    with pytest.raises(PermissionDenied):  # the author cannot approve their own request
        await v.review_merge_request(world.carol.id, repo, mr.id, "approve")
    await v.review_merge_request(world.bob.id, repo, mr.id, "request_changes", "drums clash")
    mr = await v.review_merge_request(world.bob.id, repo, "1", "approve", "fine after all")
    assert [(r.reviewer_username, r.verdict, r.current) for r in mr.reviews] == [("bob", "approve", True)]

    with pytest.raises(PermissionDenied):  # a reader cannot merge
        await v.accept_merge_request(world.carol.id, repo, mr.id)
    out = await v.accept_merge_request(world.bob.id, repo, mr.id)  # unresolved conflict: nothing written
    assert not out.merged and out.merge is not None and [c.name for c in out.merge.conflicts] == ["drums"]
    assert (await v.checkout(world.bob.id, repo)).id == main.id
    out = await v.accept_merge_request(world.bob.id, repo, mr.id, stem_strategies={"drums": Strategy.THEIRS})
    assert out.merged and out.request.state == "merged"
    merge = out.merge.commit
    assert merge is not None and merge.parent_ids == (main.id, mr.source_head)  # a real merge commit
    assert f"Merge-Request: {mr.id}" in merge.message and "!1" in merge.message
    assert out.request.merge_commit_id == merge.id and out.request.merged_by == world.bob.id
    stems = {s.name: s.blob_key for s in (await v.checkout(world.bob.id, repo)).stems}
    idea = {s.name: s.blob_key for s in (await v.checkout(world.bob.id, repo, "idea")).stems}
    assert stems == idea
    with pytest.raises(FailedPrecondition):
        await v.accept_merge_request(world.bob.id, repo, mr.id)
    with pytest.raises(FailedPrecondition):
        await v.review_merge_request(world.bob.id, repo, mr.id, "approve")


async def test_a_stale_target_is_re_evaluated_not_merged(world, helpers) -> None:
    v, repo = world.vcs, world.repo.id
    await world.commit("base", drums="d0", bass="b0")
    await _branch(world, "idea")
    await world.commit("idea bass", branch="idea", bass="b-idea")
    mr = await v.open_merge_request(world.alice.id, repo, source_branch="idea", title="bass")
    assert mr.conflicts == ()
    moved = await world.commit("main bass too", bass="b-main")  # the target moves after review
    out = await v.accept_merge_request(world.alice.id, repo, mr.id)
    assert out.stale and not out.merged
    assert out.request.target_head == moved.id and out.request.conflicts == ("bass",)
    assert out.request.version > mr.version
    assert (await v.checkout(world.alice.id, repo)).id == moved.id  # nothing merged
    out = await v.accept_merge_request(world.alice.id, repo, mr.id)  # now against what was re-evaluated
    assert not out.merged and not out.stale and [c.name for c in out.merge.conflicts] == ["bass"]
    out = await v.accept_merge_request(world.alice.id, repo, mr.id, stem_strategies={"bass": Strategy.OURS})
    assert out.merged and {s.name: s.blob_key for s in out.merge.commit.stems}["bass"] == helpers.blob("b-main")


async def test_a_moved_source_is_re_evaluated_and_old_approvals_are_outdated(world) -> None:
    v, repo = world.vcs, world.repo.id
    await world.commit("base", drums="d0")
    await _branch(world, "idea")
    await world.commit("idea 1", branch="idea", drums="d1")
    await v.set_collaborator(world.alice.id, repo, "bob", Role.READ)
    mr = await v.open_merge_request(world.alice.id, repo, source_branch="idea", title="drums")
    await v.review_merge_request(world.bob.id, repo, mr.id, "approve")
    newer = await world.commit("idea 2", branch="idea", drums="d2")
    out = await v.accept_merge_request(world.alice.id, repo, mr.id)
    assert out.stale and out.request.source_head == newer.id
    assert [r.current for r in out.request.reviews] == [False]


async def test_fork_to_upstream(world) -> None:
    v = world.vcs
    up = await v.create_repository(world.alice.id, "song", "", Visibility.PUBLIC)
    await world.commit("base", repo=up.id, drums="d0", bass="b0")
    fork = await v.fork(world.bob.id, up.id, "song-bob")
    await world.commit("bob's bass", actor=world.bob.id, repo=fork.id, bass="b-bob")
    tip = (await v.checkout(world.bob.id, fork.id)).id
    mr = await v.open_merge_request(world.bob.id, up.id, source_repo_id=fork.id, source_branch="main", title="bass")
    assert mr.source_repo_id == fork.id and mr.conflicts == ()
    # the fork's commit is not in upstream before the merge, but can be commented through the request
    with pytest.raises(NotFound):
        await v.get_commit(world.carol.id, tip, up.id)
    note = await v.add_comment(world.carol.id, up.id, merge_request_id=mr.id, body="nice", anchor=None)
    assert note.commit_id == tip
    with pytest.raises(PermissionDenied):  # bob cannot merge into alice's repository
        await v.accept_merge_request(world.bob.id, up.id, mr.id)
    out = await v.accept_merge_request(world.alice.id, up.id, mr.id)
    assert out.merged and out.request.state == "merged"
    assert "bob/song-bob:main" in out.merge.commit.message
    assert (await v.get_commit(world.carol.id, tip, up.id)).id == tip  # now a member of upstream
    log, _ = await v.log(world.carol.id, up.id)
    assert tip in [c.id for c in log]


async def test_a_refused_fork_merge_leaks_no_commit_of_a_private_fork(world) -> None:
    v = world.vcs
    up = await v.create_repository(world.alice.id, "song", "", Visibility.PUBLIC)
    await world.commit("base", repo=up.id, drums="d0")
    fork = await v.fork(world.bob.id, up.id, "private-bob", Visibility.PRIVATE)
    await world.commit("bob", actor=world.bob.id, repo=fork.id, drums="d-bob")
    tip = (await v.checkout(world.bob.id, fork.id)).id
    mr = await v.open_merge_request(world.bob.id, up.id, source_repo_id=fork.id, source_branch="main", title="d")
    await world.commit("alice", repo=up.id, drums="d-alice")
    await v.refresh_merge_request(world.alice.id, up.id, mr.id)
    out = await v.accept_merge_request(world.alice.id, up.id, mr.id)  # conflict: nothing merged
    assert not out.merged and out.merge.conflicts
    with pytest.raises(NotFound):
        await v.get_commit(world.carol.id, tip, up.id)


async def test_unrelated_repositories_and_strangers(world) -> None:
    v = world.vcs
    await world.commit("base", drums="d0")
    await _branch(world, "idea")
    await world.commit("i", branch="idea", drums="d1")
    other = await v.create_repository(world.bob.id, "other", "", Visibility.PUBLIC)
    await world.commit("o", actor=world.bob.id, repo=other.id, drums="x")
    with pytest.raises(NotFound):  # a stranger does not see the private target
        await v.open_merge_request(world.bob.id, world.repo.id, source_branch="idea", title="t")
    with pytest.raises(FailedPrecondition, match="same branch"):  # its default branch into itself
        await v.open_merge_request(world.bob.id, other.id, source_repo_id=other.id, source_branch="main", title="t")
    await v.set_collaborator(world.alice.id, world.repo.id, "bob", Role.READ)
    with pytest.raises(InvalidArgument):
        await v.open_merge_request(
            world.bob.id, other.id, source_repo_id=world.repo.id, source_branch="idea", title="t"
        )
    mr = await v.open_merge_request(world.alice.id, world.repo.id, source_branch="idea", title="t")
    with pytest.raises(NotFound):
        await v.get_merge_request(world.carol.id, world.repo.id, mr.id)
    with pytest.raises(NotFound):
        await v.review_merge_request(world.carol.id, world.repo.id, mr.id, "approve")


async def test_close_reopen_and_closing_itself_when_merged_elsewhere(world) -> None:
    v, repo = world.vcs, world.repo.id
    await world.commit("base", drums="d0")
    await _branch(world, "idea")
    await world.commit("i", branch="idea", drums="d1")
    await v.set_collaborator(world.alice.id, repo, "bob", Role.READ)
    mr = await v.open_merge_request(world.alice.id, repo, source_branch="idea", title="t")
    with pytest.raises(PermissionDenied):
        await v.set_merge_request_state(world.bob.id, repo, mr.id, "closed")
    assert (await v.set_merge_request_state(world.alice.id, repo, mr.id, "closed")).state == "closed"
    with pytest.raises(FailedPrecondition):
        await v.accept_merge_request(world.alice.id, repo, mr.id)
    assert (await v.set_merge_request_state(world.alice.id, repo, mr.id, "open")).state == "open"
    await v.merge(world.alice.id, repo, from_ref="idea")  # merged by hand
    mr, _ = await v.refresh_merge_request(world.bob.id, repo, mr.id)
    assert mr.state == "merged"


async def test_parallel_reviews_and_merge_lose_no_state(world) -> None:
    v, repo = world.vcs, world.repo.id
    await world.commit("base", drums="d0")
    await _branch(world, "idea")
    await world.commit("i", branch="idea", drums="d1")
    reviewers = [world.bob, world.carol] + [await v.create_user(f"rev{i}", "h") for i in range(8)]
    for r in reviewers:
        await v.set_collaborator(world.alice.id, repo, r.username, Role.READ)
    mr = await v.open_merge_request(world.alice.id, repo, source_branch="idea", title="t")
    verdicts = ["approve" if i % 2 else "request_changes" for i in range(len(reviewers))]
    await asyncio.gather(
        *(v.review_merge_request(r.id, repo, mr.id, verdict) for r, verdict in zip(reviewers, verdicts, strict=True))
    )
    after, _ = await v.get_merge_request(world.alice.id, repo, mr.id)
    assert {r.reviewer_id: r.verdict for r in after.reviews} == {
        r.id: verdict for r, verdict in zip(reviewers, verdicts, strict=True)
    }
    assert after.version == mr.version + len(reviewers)
    # one reviewer flipping in parallel: every verdict is kept in order, the latest wins
    flips = ["approve", "request_changes"] * 5
    await asyncio.gather(*(v.review_merge_request(world.bob.id, repo, mr.id, f) for f in flips))
    from sqlalchemy import text

    async with v.engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text("SELECT verdict FROM reviews WHERE merge_request_id = :m AND reviewer_id = :r ORDER BY seq"),
                    {"m": mr.id, "r": world.bob.id},
                )
            )
            .scalars()
            .all()
        )
    assert len(rows) == 1 + len(flips)
    after, _ = await v.get_merge_request(world.alice.id, repo, mr.id)
    assert {r.reviewer_id: r.verdict for r in after.reviews}[world.bob.id] == rows[-1]
    # a merge racing reviews: each review either lands before the merge or is refused after it
    results = await asyncio.gather(
        v.accept_merge_request(world.alice.id, repo, mr.id),
        *(v.review_merge_request(r.id, repo, mr.id, "approve") for r in reviewers[2:]),
        return_exceptions=True,
    )
    assert results[0].merged
    for r in results[1:]:
        assert not isinstance(r, Exception) or isinstance(r, FailedPrecondition)
    final, _ = await v.get_merge_request(world.alice.id, repo, mr.id)
    assert final.state == "merged"
    assert final.version == after.version + 1 + sum(1 for r in results[1:] if not isinstance(r, Exception))
