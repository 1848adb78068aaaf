"""Edge cases found in review: forged page tokens, self merges, empty repositories."""

from __future__ import annotations

import pytest

from beatflow.common.errors import InvalidArgument
from beatflow.vcs.model import Visibility
from beatflow.vcs.page_tokens import encode_token


async def test_forged_first_parent_token_cannot_read_another_repository(world) -> None:
    secret = await world.commit("secret", drums="secret-drums")  # alice's private repo
    public = await world.vcs.create_repository(world.bob.id, "open", "", Visibility.PUBLIC)
    mine = await world.commit("mine", actor=world.bob.id, repo=public.id, drums="bob-drums")
    forged = encode_token({"h": mine.id, "fp": True, "n": secret.id})
    with pytest.raises(InvalidArgument):
        page, _ = await world.vcs.log(world.bob.id, public.id, first_parent=True, page_token=forged)
        assert secret.id not in [c.id for c in page]


async def test_a_reader_cannot_publish_private_work_through_a_private_fork(world) -> None:
    from beatflow.common.errors import FailedPrecondition
    from beatflow.vcs.model import Role

    v = world.vcs
    await world.commit("secret", drums="secret-drums")
    await v.set_collaborator(world.alice.id, world.repo.id, "bob", Role.READ)
    fork = await v.fork(world.bob.id, world.repo.id, "mine", Visibility.PRIVATE)
    with pytest.raises(FailedPrecondition):  # made public afterwards
        await v.update_repository(world.bob.id, fork.id, visibility=Visibility.PUBLIC)
    with pytest.raises(FailedPrecondition):  # or through a public fork of the private fork
        await v.fork(world.bob.id, fork.id, "mine2", Visibility.PUBLIC)
    assert (await v.get_repository(world.bob.id, fork.id)).visibility == Visibility.PRIVATE
    # the owner of the private source may publish a fork of it
    own = await v.fork(world.alice.id, world.repo.id, "copy", Visibility.PRIVATE)
    assert (await v.update_repository(world.alice.id, own.id, visibility=Visibility.PUBLIC)).visibility == (
        Visibility.PUBLIC
    )


async def test_deleting_a_repository_while_a_commit_is_in_flight_leaves_no_orphans(world) -> None:
    """The commit's membership row and commit must go with the repository (else its blobs are pinned forever)."""
    import asyncio

    from beatflow.vcs import commits
    from beatflow.vcs.model import Metadata, Role
    from beatflow.vcs.repo_access import load_repo_as_user

    v = world.vcs
    first = await world.commit("one", drums="d1")
    seq = await _scalar(v, "SELECT seq FROM repositories WHERE id = :r", r=world.repo.id)
    async with v.engine.begin() as conn:
        repo, username = await load_repo_as_user(conn, world.repo.id, world.alice.id, Role.WRITE)
        late = await commits.create_commit(
            conn,
            repo,
            world.alice.id,
            username,
            branch="main",
            expected_head=first.id,
            message="late",
            stems=[],
            mixdown_blob="",
            metadata=Metadata(),
            inherit_stems=True,
        )
        deleting = asyncio.create_task(v.delete_repository(world.alice.id, world.repo.id))
        while not await _scalar(v, "SELECT count(*) FROM pg_locks WHERE NOT granted"):
            assert not deleting.done()
            await asyncio.sleep(0.01)
    await deleting
    assert await _scalar(v, "SELECT count(*) FROM repo_commits WHERE repo_seq = :s", s=seq) == 0
    assert await _scalar(v, "SELECT count(*) FROM commits WHERE id = :c", c=late.id) == 0


async def _scalar(v, sql: str, **params):
    from sqlalchemy import text

    async with v.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def test_values_postgresql_cannot_store_are_invalid_arguments(world, helpers) -> None:
    """A NUL character, an over-long content type or a NUL escape in JSON: INVALID_ARGUMENT, not INTERNAL."""
    from beatflow.vcs.model import Metadata, Stem

    v, a, r = world.vcs, world.alice.id, world.repo.id
    k = helpers.blob("x")
    with pytest.raises(InvalidArgument):
        await v.create_commit(a, r, message="a\x00b")
    with pytest.raises(InvalidArgument):
        await v.create_commit(a, r, stems=[Stem("drums", k, "x" * 500)])
    with pytest.raises(InvalidArgument):
        await v.create_commit(a, r, metadata=Metadata(key="\x00"))
    with pytest.raises(InvalidArgument):
        await v.update_repository(a, r, description="\x00")
    with pytest.raises(InvalidArgument):
        await v.register_blob(a, k, "x" * 1000)
    with pytest.raises(InvalidArgument):
        await v.create_user("zed", "\x00")
    assert await v.list_refs(a, r) == []  # nothing half-written
    with pytest.raises(InvalidArgument):  # reads too
        await v.log(a, r, "main\x00")
    with pytest.raises(InvalidArgument):
        await v.get_credentials(username="\x00")


async def test_a_commit_racing_the_deletion_of_its_repository_is_not_found(world) -> None:
    import asyncio

    from beatflow.common.errors import NotFound
    from beatflow.vcs import repos

    v = world.vcs
    await world.commit("one", drums="d1")
    async with v.engine.begin() as conn:  # the deletion, left open
        await repos.delete_repository(conn, world.alice.id, world.repo.id)
        late = asyncio.create_task(v.create_commit(world.alice.id, world.repo.id, branch="new", message="late"))
        while not await _scalar(v, "SELECT count(*) FROM pg_locks WHERE NOT granted"):
            assert not late.done()
            await asyncio.sleep(0.01)
    with pytest.raises(NotFound):
        await late


async def test_a_branch_created_while_its_repository_is_deleted_is_not_found(world) -> None:
    import asyncio

    from beatflow.common.errors import NotFound
    from beatflow.vcs import repos

    v = world.vcs
    await world.commit("one", drums="d1")
    async with v.engine.begin() as conn:  # the deletion, left open
        await repos.delete_repository(conn, world.alice.id, world.repo.id)
        late = asyncio.create_task(v.create_branch(world.alice.id, world.repo.id, "side"))
        while not await _scalar(v, "SELECT count(*) FROM pg_locks WHERE NOT granted"):
            assert not late.done()
            await asyncio.sleep(0.01)
    with pytest.raises(NotFound):  # not ALREADY_EXISTS
        await late
