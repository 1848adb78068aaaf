"""Comments on commits: threads, time ranges checked against the stem's duration, edit/delete, resolve."""

from __future__ import annotations

import pytest

from beatflow.common.errors import InvalidArgument, NotFound, PermissionDenied
from beatflow.vcs.comments import MAX_BODY, Anchor
from beatflow.vcs.model import Role, Visibility


async def test_threads_group_replies_under_the_first_comment(world) -> None:
    v = world.vcs
    c = await world.commit("one", drums="d1", bass="b1")
    await v.set_collaborator(world.alice.id, world.repo.id, "bob", Role.READ)
    root = await v.add_comment(
        world.alice.id, world.repo.id, commit_id=c.id, body="kick too loud", anchor=Anchor("drums", 0.25, 0.75)
    )
    reply = await v.add_comment(world.bob.id, world.repo.id, parent_id=root.id, body="agreed")
    # a reply to a reply joins the same thread
    nested = await v.add_comment(world.alice.id, world.repo.id, parent_id=reply.id, body="fixing")
    assert (reply.parent_id, nested.parent_id) == (root.id, root.id)
    assert nested.commit_id == c.id
    listed, token = await v.list_comments(world.bob.id, world.repo.id, commit_id=c.id)
    assert [x.id for x in listed] == [root.id, reply.id, nested.id] and token == ""
    assert (listed[0].stem, listed[0].start_s, listed[0].end_s) == ("drums", 0.25, 0.75)
    page, token = await v.list_comments(world.bob.id, world.repo.id, commit_id=c.id, page_size=2)
    rest, end = await v.list_comments(world.bob.id, world.repo.id, commit_id=c.id, page_size=2, page_token=token)
    assert [x.id for x in page + rest] == [root.id, reply.id, nested.id] and end == ""
    with pytest.raises(InvalidArgument):  # only the thread's root is anchored
        await v.add_comment(world.bob.id, world.repo.id, parent_id=root.id, body="x", anchor=Anchor("drums"))


@pytest.mark.parametrize(
    ("anchor", "ok"),
    [
        (Anchor("drums", 0.0, 1.5), True),  # the whole stem (duration 1.5 s)
        (Anchor("drums", 1.0, 1.0), True),  # a point
        (Anchor("drums"), True),  # the stem without a time
        (Anchor("drums", 1.0, 1.6), False),  # past the end
        (Anchor("drums", -0.1, 0.5), False),
        (Anchor("drums", 0.8, 0.5), False),  # reversed
        (Anchor("drums", 0.5, None), False),
        (Anchor("drums", float("nan"), 1.0), False),
        (Anchor("vocals", 0.0, 0.5), False),  # no such stem in the commit
    ],
)
async def test_time_ranges_are_checked_against_the_stem(world, anchor: Anchor, ok: bool) -> None:
    c = await world.commit("one", drums="d1")
    call = world.vcs.add_comment(world.alice.id, world.repo.id, commit_id=c.id, body="here", anchor=anchor)
    if ok:
        assert (await call).stem == "drums"
    else:
        with pytest.raises(InvalidArgument):
            await call


async def test_body_is_plain_text_with_a_length_limit(world) -> None:
    c = await world.commit("one", drums="d1")
    for bad in ("", "   ", "x" * (MAX_BODY + 1), "bell\x07"):
        with pytest.raises(InvalidArgument):
            await world.vcs.add_comment(world.alice.id, world.repo.id, commit_id=c.id, body=bad)
    ok = await world.vcs.add_comment(world.alice.id, world.repo.id, commit_id=c.id, body="two\nlines\tok")
    assert ok.body == "two\nlines\tok"


async def test_a_commit_of_another_repository_cannot_be_commented_here(world) -> None:
    v = world.vcs
    other = await v.create_repository(world.bob.id, "bobs", "", Visibility.PUBLIC)
    theirs = await world.commit("b", actor=world.bob.id, repo=other.id, drums="bd")
    await world.commit("one", drums="d1")
    with pytest.raises(NotFound):
        await v.add_comment(world.alice.id, world.repo.id, commit_id=theirs.id, body="hi")


async def test_edit_and_delete_by_the_author_resolve_by_writers(world) -> None:
    v = world.vcs
    c = await world.commit("one", drums="d1")
    await v.set_collaborator(world.alice.id, world.repo.id, "bob", Role.READ)
    await v.set_collaborator(world.alice.id, world.repo.id, "carol", Role.WRITE)
    root = await v.add_comment(world.bob.id, world.repo.id, commit_id=c.id, body="typo")
    reply = await v.add_comment(world.carol.id, world.repo.id, parent_id=root.id, body="carol's reply")
    assert (await v.edit_comment(world.bob.id, world.repo.id, root.id, "fixed")).body == "fixed"
    for other in (world.alice.id, world.carol.id):  # not even the owner edits someone's words
        with pytest.raises(PermissionDenied):
            await v.edit_comment(other, world.repo.id, root.id, "changed")
    with pytest.raises(PermissionDenied):  # a writer may not delete others' comments
        await v.delete_comment(world.carol.id, world.repo.id, root.id)
    with pytest.raises(PermissionDenied):  # a reader resolves only their own thread
        await v.resolve_comment(
            world.bob.id,
            world.repo.id,
            (await v.add_comment(world.carol.id, world.repo.id, commit_id=c.id, body="carol's thread")).id,
            True,
        )
    resolved = await v.resolve_comment(world.carol.id, world.repo.id, root.id, True)
    assert resolved.resolved and resolved.resolved_by == world.carol.id
    assert not (await v.resolve_comment(world.bob.id, world.repo.id, root.id, False)).resolved
    with pytest.raises(InvalidArgument):  # replies are not resolved on their own
        await v.resolve_comment(world.carol.id, world.repo.id, reply.id, True)
    gone = await v.delete_comment(world.bob.id, world.repo.id, root.id)
    assert gone.deleted and gone.body == ""
    listed, _ = await v.list_comments(world.bob.id, world.repo.id, commit_id=c.id)
    assert [x.body for x in listed if x.parent_id == root.id] == ["carol's reply"]  # the thread stays
    # the owner moderates
    assert (await v.delete_comment(world.alice.id, world.repo.id, reply.id)).deleted


async def test_comments_go_with_a_deleted_repository(world) -> None:
    from sqlalchemy import text

    v = world.vcs
    c = await world.commit("one", drums="d1")
    await v.add_comment(world.alice.id, world.repo.id, commit_id=c.id, body="soon gone")
    await v.delete_repository(world.alice.id, world.repo.id)
    async with v.engine.connect() as conn:
        for table in ("comments", "activity"):
            n = (
                await conn.execute(text(f"SELECT count(*) FROM {table} WHERE repo_id = :r"), {"r": world.repo.id})
            ).scalar()
            assert n == 0, table
