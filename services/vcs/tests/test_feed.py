"""Activity feed: order, keyset pages, what's new across repositories, and the permission matrix of review."""

from __future__ import annotations

import pytest

from beatflow.common.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from beatflow.vcs.comments import Anchor
from beatflow.vcs.model import Role, Visibility


async def test_repository_feed_lists_commits_branches_comments_reviews_merges_newest_first(world) -> None:
    v, repo = world.vcs, world.repo.id
    await v.set_collaborator(world.alice.id, repo, "bob", Role.WRITE)
    c1 = await world.commit("one", drums="d1")
    await v.create_branch(world.bob.id, repo, "idea")
    c2 = await world.commit("two", branch="idea", actor=world.bob.id, drums="d2")
    note = await v.add_comment(world.bob.id, repo, commit_id=c1.id, body="listen", anchor=Anchor("drums", 0, 1))
    mr = await v.open_merge_request(world.bob.id, repo, source_branch="idea", title="idea")
    await v.review_merge_request(world.alice.id, repo, mr.id, "approve")
    out = await v.accept_merge_request(world.alice.id, repo, mr.id)
    events, token = await v.repository_activity(world.bob.id, repo)
    assert token == ""
    got = [(e.kind, e.actor_username) for e in events]
    assert got == [
        ("merge_request_merged", "alice"),
        ("push", "alice"),  # the merge commit moving main
        ("review_approve", "alice"),
        ("merge_request_opened", "bob"),
        ("comment", "bob"),
        ("push", "bob"),
        ("branch_created", "bob"),
        ("branch_created", "alice"),  # the first commit creates main
    ]
    assert [e.seq for e in events] == sorted((e.seq for e in events), reverse=True)
    assert events[0].merge_request_id == mr.id and events[0].commit_id == out.merge.commit.id
    assert events[4].comment_id == note.id and events[4].commit_id == c1.id
    assert (events[5].commit_id, events[5].old_commit_id, events[5].ref_name) == (c2.id, c1.id, "idea")
    # keyset pages: same events, no gaps or repeats, even while new events arrive
    seen, token = [], ""
    first = True
    while first or token:
        page, token = await v.repository_activity(world.bob.id, repo, page_size=3, page_token=token)
        if first:
            await v.add_comment(world.alice.id, repo, commit_id=c1.id, body="arrives mid-way")
            first = False
        seen += [e.seq for e in page]
    assert seen == [e.seq for e in events]
    with pytest.raises(InvalidArgument):
        await v.repository_activity(world.bob.id, repo, page_token="bm90LWpzb24")


async def test_whats_new_covers_followed_readable_repositories_but_not_ones_own_events(world) -> None:
    v = world.vcs
    await world.commit("alice private", drums="d1")  # alice's private repo: bob is no collaborator
    public = await v.create_repository(world.carol.id, "open", "", Visibility.PUBLIC)
    await world.commit("carol", actor=world.carol.id, repo=public.id, drums="c1")
    fork = await v.fork(world.bob.id, public.id, "mine")
    await world.commit("bob's own", actor=world.bob.id, repo=fork.id, drums="b1")
    unrelated = await v.create_repository(world.carol.id, "unrelated", "", Visibility.PUBLIC)
    await world.commit("noise", actor=world.carol.id, repo=unrelated.id, drums="n")
    later = await world.commit("carol again", actor=world.carol.id, repo=public.id, drums="c2")
    news, _ = await v.whats_new(world.bob.id)
    assert {e.repo_id for e in news} == {public.id}  # the upstream of bob's fork
    assert news[0].commit_id == later.id and all(e.actor_id != world.bob.id for e in news)
    await v.set_collaborator(world.alice.id, world.repo.id, "bob", Role.READ)
    await v.add_comment(
        world.alice.id,
        world.repo.id,
        commit_id=(await v.checkout(world.alice.id, world.repo.id)).id,
        body="now bob sees this",
    )
    news, _ = await v.whats_new(world.bob.id)
    assert news[0].repo_id == world.repo.id and news[0].kind == "comment"
    await v.set_collaborator(world.alice.id, world.repo.id, "bob", Role.NONE)
    news, _ = await v.whats_new(world.bob.id)
    assert world.repo.id not in {e.repo_id for e in news}
    with pytest.raises(Unauthenticated):
        await v.whats_new("")


ROLES = ("owner", "writer", "reader", "stranger")


@pytest.mark.parametrize("role", ROLES)
async def test_permission_matrix(world, role: str) -> None:
    """Private repository: readers comment and review, writers also resolve others' threads and merge,
    strangers see nothing (NOT_FOUND, as for the repository itself)."""
    v, repo = world.vcs, world.repo.id
    c = await world.commit("base", drums="d0")
    await v.create_branch(world.alice.id, repo, "idea")
    await world.commit("i", branch="idea", drums="d1")
    actor = {"owner": world.alice, "writer": world.bob, "reader": world.carol}.get(role)
    if actor is None:
        actor = await v.create_user("dave", "h")
    if role == "writer":
        await v.set_collaborator(world.alice.id, repo, "bob", Role.WRITE)
    if role == "reader":
        await v.set_collaborator(world.alice.id, repo, "carol", Role.READ)
    other = world.carol if role != "reader" else world.bob
    await v.set_collaborator(world.alice.id, repo, other.username, Role.READ)
    thread = await v.add_comment(other.id, repo, commit_id=c.id, body="someone's thread")
    mr = await v.open_merge_request(other.id, repo, source_branch="idea", title="t")

    if role == "stranger":
        calls = [
            v.add_comment(actor.id, repo, commit_id=c.id, body="hi"),
            v.list_comments(actor.id, repo, commit_id=c.id),
            v.resolve_comment(actor.id, repo, thread.id, True),
            v.get_merge_request(actor.id, repo, mr.id),
            v.list_merge_requests(actor.id, repo),
            v.review_merge_request(actor.id, repo, mr.id, "approve"),
            v.accept_merge_request(actor.id, repo, mr.id),
            v.open_merge_request(actor.id, repo, source_branch="idea", title="t2"),
            v.repository_activity(actor.id, repo),
        ]
        for call in calls:
            with pytest.raises(NotFound):
                await call
        assert repo not in {e.repo_id for e in (await v.whats_new(actor.id))[0]}
        return

    mine = await v.add_comment(actor.id, repo, commit_id=c.id, body="mine")
    assert (await v.edit_comment(actor.id, repo, mine.id, "edited")).body == "edited"
    listed, _ = await v.list_comments(actor.id, repo, commit_id=c.id)
    assert {x.id for x in listed} == {thread.id, mine.id}
    assert (await v.review_merge_request(actor.id, repo, mr.id, "approve")).reviews
    assert (await v.repository_activity(actor.id, repo))[0]
    if role == "reader":
        with pytest.raises(PermissionDenied):
            await v.resolve_comment(actor.id, repo, thread.id, True)
        with pytest.raises(PermissionDenied):
            await v.delete_comment(actor.id, repo, thread.id)
        with pytest.raises(PermissionDenied):
            await v.accept_merge_request(actor.id, repo, mr.id)
        with pytest.raises(PermissionDenied):
            await v.set_merge_request_state(actor.id, repo, mr.id, "closed")
        return
    assert (await v.resolve_comment(actor.id, repo, thread.id, True)).resolved
    if role == "writer":
        with pytest.raises(PermissionDenied):
            await v.delete_comment(actor.id, repo, thread.id)
    else:
        assert (await v.delete_comment(actor.id, repo, thread.id)).deleted
    assert (await v.accept_merge_request(actor.id, repo, mr.id)).merged
