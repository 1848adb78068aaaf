"""Permissions: owner, collaborators (read/write), public read; private repositories never leak."""

from __future__ import annotations

import pytest

from beatflow.common.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from beatflow.vcs.model import Role, Visibility


async def test_users(vcs) -> None:
    u = await vcs.create_user("Dana", "argon2-hash")
    with pytest.raises(AlreadyExists):
        await vcs.create_user("dana", "other")  # usernames are case-insensitive
    user, hashed = await vcs.get_credentials(username="DANA")
    assert user.id == u.id and hashed == "argon2-hash"
    assert (await vcs.get_credentials(user_id=u.id))[0].username == "Dana"
    with pytest.raises(NotFound):
        await vcs.get_credentials(username="nobody")
    with pytest.raises(InvalidArgument):
        await vcs.get_credentials()


async def test_private_repository_is_invisible_to_strangers(world) -> None:
    vcs, r = world.vcs, world.repo.id
    c1 = await world.commit("one", drums="d1")
    for call in (
        vcs.get_repository(world.bob.id, r),
        vcs.log(world.bob.id, r),
        vcs.checkout(world.bob.id, r),
        vcs.list_refs(world.bob.id, r),
        vcs.get_commit(world.bob.id, c1.id),
        vcs.get_commit(world.bob.id, c1.id, r),
        vcs.fork(world.bob.id, r, "stolen"),
        vcs.create_commit(world.bob.id, r, expected_head=c1.id, message="x"),
        vcs.delete_repository(world.bob.id, r),
        vcs.get_repository("", r),
    ):
        with pytest.raises(NotFound) as err:
            await call
        assert "not found" in err.value.message
    # Same answer as for a repository that does not exist at all.
    with pytest.raises(NotFound):
        await vcs.get_repository(world.bob.id, "0" * 32)
    assert [x.id for x in (await vcs.list_repositories(world.bob.id))[0]] == []


async def test_collaborator_roles(world) -> None:
    vcs, r, alice, bob, carol = world.vcs, world.repo.id, world.alice, world.bob, world.carol
    c1 = await world.commit("one", drums="d1")
    with pytest.raises(NotFound):  # bob cannot even see it yet
        await vcs.set_collaborator(bob.id, r, "carol", Role.WRITE)
    await vcs.set_collaborator(alice.id, r, "bob", Role.READ)
    assert (await vcs.get_repository(bob.id, r)).role == Role.READ
    assert (await vcs.checkout(bob.id, r)).id == c1.id
    with pytest.raises(PermissionDenied):
        await vcs.create_commit(bob.id, r, expected_head=c1.id, message="x")
    with pytest.raises(PermissionDenied):
        await vcs.create_branch(bob.id, r, "b")
    with pytest.raises(PermissionDenied):
        await vcs.merge(bob.id, r, from_ref="main")
    with pytest.raises(PermissionDenied):
        await vcs.set_collaborator(bob.id, r, "carol", Role.READ)
    with pytest.raises(PermissionDenied):
        await vcs.delete_repository(bob.id, r)
    await vcs.set_collaborator(alice.id, r, "bob", Role.WRITE)
    c2 = await world.commit("bob's", actor=bob.id, bass="b1")
    assert c2.author_username == "bob" and c2.parent_ids == (c1.id,)
    await vcs.create_branch(bob.id, r, "bob-branch")
    with pytest.raises(PermissionDenied):  # write is not owner
        await vcs.delete_repository(bob.id, r)
    assert [(c.username, c.role) for c in await vcs.list_collaborators(bob.id, r)] == [("bob", Role.WRITE)]
    with pytest.raises(InvalidArgument):
        await vcs.set_collaborator(alice.id, r, "alice", Role.READ)
    with pytest.raises(InvalidArgument):
        await vcs.set_collaborator(alice.id, r, "carol", Role.OWNER)
    with pytest.raises(NotFound):
        await vcs.set_collaborator(alice.id, r, "nobody", Role.READ)
    await vcs.set_collaborator(alice.id, r, "bob", Role.NONE)  # removal
    with pytest.raises(NotFound):
        await vcs.get_repository(bob.id, r)
    listed = (await vcs.list_repositories(carol.id))[0]
    assert listed == []


async def test_public_repository_reads_and_listing(world) -> None:
    vcs, alice, bob = world.vcs, world.alice, world.bob
    pub = await vcs.create_repository(alice.id, "open-beat", visibility=Visibility.PUBLIC)
    c = await world.commit("pub", repo=pub.id, drums="p1")
    assert (await vcs.get_repository("", pub.id)).role == Role.READ  # anonymous read
    assert (await vcs.checkout(bob.id, pub.id)).id == c.id
    with pytest.raises(PermissionDenied):
        await vcs.create_commit(bob.id, pub.id, expected_head=c.id, message="x")
    with pytest.raises(Unauthenticated):
        await vcs.create_branch("", pub.id, "anon")
    with pytest.raises(Unauthenticated):
        await vcs.create_repository("", "x")
    with pytest.raises(AlreadyExists):
        await vcs.create_repository(alice.id, "open-beat")
    await vcs.create_repository(bob.id, "open-beat")  # names are per owner
    # listing: keyset pages, newest first, only what the actor can read
    for i in range(5):
        await vcs.create_repository(alice.id, f"p{i}", visibility=Visibility.PUBLIC)
    names: list[str] = []
    token = ""
    while True:
        page, token = await vcs.list_repositories(bob.id, page_size=2, page_token=token)
        names += [f"{x.owner_username}/{x.name}" for x in page]
        if not token:
            break
    assert names == ["alice/p4", "alice/p3", "alice/p2", "alice/p1", "alice/p0", "bob/open-beat", "alice/open-beat"]
    assert "alice/beat" not in names  # private


async def test_update_repository(world) -> None:
    vcs, alice, bob = world.vcs, world.alice, world.bob
    r = world.repo.id
    other = await vcs.create_repository(alice.id, "other")
    with pytest.raises(NotFound):
        await vcs.update_repository(bob.id, r, visibility=Visibility.PUBLIC)
    updated = await vcs.update_repository(alice.id, r, name="renamed", description="new", visibility=Visibility.PUBLIC)
    assert (updated.name, updated.description, updated.visibility) == ("renamed", "new", Visibility.PUBLIC)
    with pytest.raises(PermissionDenied):  # public now: bob sees it but may not change it
        await vcs.update_repository(bob.id, r, description="mine")
    with pytest.raises(AlreadyExists):
        await vcs.update_repository(alice.id, r, name=other.name)
    with pytest.raises(InvalidArgument):
        await vcs.update_repository(alice.id, r, default_branch="bad..branch")
    assert (await vcs.update_repository(alice.id, r, default_branch="dev")).default_branch == "dev"
    assert (await vcs.update_repository(alice.id, r)).name == "renamed"  # nothing to change


async def test_delete_repository(world) -> None:
    vcs = world.vcs
    await world.commit("x", drums="d")
    gone = await vcs.delete_repository(world.alice.id, world.repo.id)
    assert gone.id == world.repo.id
    with pytest.raises(NotFound):
        await vcs.get_repository(world.alice.id, world.repo.id)
