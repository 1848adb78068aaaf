"""Forks share commits and blobs; blob read permission; the garbage collector keeps every referenced blob."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from beatflow.common.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from beatflow.vcs.model import Role, Stem, Visibility
from beatflow.vcs.service import VcsService


async def _count(vcs, sql: str, **params) -> int:
    async with vcs.engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def test_fork_shares_commits_and_blobs(world) -> None:
    vcs, alice, bob = world.vcs, world.alice, world.bob
    pub = await vcs.create_repository(alice.id, "song", "desc", Visibility.PUBLIC)
    c1 = await world.commit("one", repo=pub.id, drums="d1", bass="b1")
    c2 = await world.commit("two", repo=pub.id, drums="d2")
    await vcs.create_tag(alice.id, pub.id, "v1", c1.id)
    n_commits = await _count(vcs, "SELECT count(*) FROM commits")
    n_stems = await _count(vcs, "SELECT count(*) FROM commit_stems")
    n_blobs = await _count(vcs, "SELECT count(*) FROM blobs")
    fork = await vcs.fork(bob.id, pub.id, "my-song")
    assert fork.forked_from_id == pub.id and fork.owner_id == bob.id and fork.visibility == Visibility.PUBLIC
    # No commit, stem or blob was copied: the fork holds the same commit rows.
    assert await _count(vcs, "SELECT count(*) FROM commits") == n_commits
    assert await _count(vcs, "SELECT count(*) FROM commit_stems") == n_stems
    assert await _count(vcs, "SELECT count(*) FROM blobs") == n_blobs
    assert [c.id for c in (await vcs.log(bob.id, fork.id))[0]] == [c2.id, c1.id]
    assert {(r.name, r.commit_id) for r in await vcs.list_refs(bob.id, fork.id)} == {("main", c2.id), ("v1", c1.id)}
    fork_head = await vcs.checkout(bob.id, fork.id)
    source_head = await vcs.checkout(alice.id, pub.id)
    assert [s.blob_key for s in fork_head.stems] == [s.blob_key for s in source_head.stems]
    # The fork moves on alone.
    c3 = await world.commit("bob's", repo=fork.id, actor=bob.id, vox="v3")
    assert (await vcs.checkout(alice.id, pub.id)).id == c2.id
    with pytest.raises(NotFound):  # the source does not hold the fork's commit
        await vcs.get_commit(alice.id, c3.id, pub.id)
    with pytest.raises(AlreadyExists):
        await vcs.fork(bob.id, pub.id, "my-song")
    # Deleting the source keeps the fork whole.
    await vcs.delete_repository(alice.id, pub.id)
    assert len((await vcs.log(bob.id, fork.id))[0]) == 3
    assert (await vcs.get_repository(bob.id, fork.id)).forked_from_id is None


async def test_fork_of_private_repository(world) -> None:
    vcs = world.vcs
    await world.commit("one", drums="d1")
    await vcs.set_collaborator(world.alice.id, world.repo.id, "bob", Role.READ)
    with pytest.raises(FailedPrecondition):  # a reader may not publish private work
        await vcs.fork(world.bob.id, world.repo.id, "leak", Visibility.PUBLIC)
    fork = await vcs.fork(world.bob.id, world.repo.id, "mine")
    assert fork.visibility == Visibility.PRIVATE
    with pytest.raises(NotFound):  # carol sees neither
        await vcs.get_repository(world.carol.id, fork.id)


async def test_blob_read_permission(world, helpers) -> None:
    vcs, alice, bob, carol = world.vcs, world.alice, world.bob, world.carol
    key = helpers.blob("alice-upload")
    await vcs.register_blob(alice.id, key, "audio/wav", 1234)
    assert await vcs.can_read_blob(alice.id, key)
    assert not await vcs.can_read_blob(bob.id, key)
    # Bob cannot launder alice's upload into his own repository.
    bobs = await vcs.create_repository(bob.id, "bobs")
    with pytest.raises(PermissionDenied):
        await vcs.create_commit(bob.id, bobs.id, stems=[Stem("drums", key)])
    # Once alice commits it to a repository bob can read, bob may read it.
    await vcs.create_commit(alice.id, world.repo.id, stems=[Stem("drums", key)])
    assert not await vcs.can_read_blob(bob.id, key)
    await vcs.set_collaborator(alice.id, world.repo.id, "bob", Role.READ)
    assert await vcs.can_read_blob(bob.id, key)
    assert not await vcs.can_read_blob(carol.id, key)
    await vcs.create_commit(bob.id, bobs.id, stems=[Stem("drums", key)])  # now allowed
    # Same bytes uploaded by carol too: she owns her copy.
    await vcs.register_blob(carol.id, key, "audio/wav", 1234)
    assert await vcs.can_read_blob(carol.id, key)


async def test_gc_keeps_referenced_and_young_blobs(world, helpers, local_store) -> None:
    vcs = VcsService(world.vcs.engine, gc_grace_period_s=3600, delete_blob=local_store.delete)
    alice = world.alice
    keys = {}
    for label in ("in-old-commit", "in-head", "mixdown", "orphan-old", "orphan-young", "unregistered-old"):
        keys[label] = local_store.put_bytes(label.encode(), content_type="audio/wav")
        if label != "unregistered-old":
            await vcs.register_blob(alice.id, keys[label], "audio/wav", len(label))
    c1 = await vcs.create_commit(alice.id, world.repo.id, stems=[Stem("drums", keys["in-old-commit"])])
    await vcs.create_commit(
        alice.id,
        world.repo.id,
        expected_head=c1.id,
        stems=[Stem("drums", keys["in-head"])],
        mixdown_blob=keys["mixdown"],
    )
    # Age the "old" uploads past the grace period.
    async with vcs.engine.begin() as conn:
        await conn.execute(
            text("UPDATE blobs SET created_at = now() - interval '2 hours' WHERE key <> :young"),
            {"young": keys["orphan-young"]},
        )
    old = time.time() - 7200
    candidates = {k: (old if label == "unregistered-old" else None) for label, k in keys.items()}
    report = await vcs.garbage_collect(candidates, dry_run=True)
    assert sorted(report.deletable) == sorted([keys["orphan-old"], keys["unregistered-old"]])
    assert report.referenced == 3 and report.kept_young == 1 and not report.deleted
    assert all(local_store.exists(k) for k in keys.values())  # dry run deletes nothing
    done = await vcs.garbage_collect(candidates, dry_run=False)
    assert sorted(done.deletable) == sorted(report.deletable) and done.deleted
    for label, k in keys.items():
        assert local_store.exists(k) == (label not in ("orphan-old", "unregistered-old")), label
    # A commit naming a collected blob is refused until it is uploaded and registered again.
    with pytest.raises(FailedPrecondition):
        await vcs.create_commit(alice.id, world.repo.id, branch="x", stems=[Stem("drums", keys["orphan-old"])])
    local_store.put_bytes(b"orphan-old")
    await vcs.register_blob(alice.id, keys["orphan-old"], "audio/wav", 10)
    c = await vcs.create_commit(alice.id, world.repo.id, branch="x", stems=[Stem("drums", keys["orphan-old"])])
    assert c.stems[0].blob_key == keys["orphan-old"]
    # Deleting the only repository that referenced blobs makes them collectable (forks: next test).
    assert (await vcs.garbage_collect({keys["in-old-commit"]: None}, grace_period_s=1)).deletable == []
    await vcs.delete_repository(alice.id, world.repo.id)
    again = await vcs.garbage_collect({keys["in-old-commit"]: None, keys["in-head"]: None}, grace_period_s=1)
    assert sorted(again.deletable) == sorted([keys["in-old-commit"], keys["in-head"]])


async def test_gc_respects_forks(world, helpers) -> None:
    vcs = world.vcs
    key = helpers.blob("shared")
    await world.vcs.register_blob(world.alice.id, key, "audio/wav", 1)
    pub = await vcs.create_repository(world.alice.id, "pub", visibility=Visibility.PUBLIC)
    await vcs.create_commit(world.alice.id, pub.id, stems=[Stem("drums", key)])
    await vcs.fork(world.bob.id, pub.id, "fork")
    await vcs.delete_repository(world.alice.id, pub.id)
    async with vcs.engine.begin() as conn:
        await conn.execute(text("UPDATE blobs SET created_at = now() - interval '1 day'"))
    result = await vcs.garbage_collect({key: None}, grace_period_s=60, dry_run=False)
    assert result.deletable == [] and result.referenced == 1


async def test_gc_racing_commits_never_leaves_a_dangling_reference(world, helpers, local_store) -> None:
    """Collector and committers racing on the same blobs: a committed blob is never deleted."""
    import asyncio

    vcs = VcsService(world.vcs.engine, gc_grace_period_s=3600, delete_blob=local_store.delete)
    keys = [local_store.put_bytes(f"race-{i}".encode()) for i in range(20)]
    for k in keys:
        await vcs.register_blob(world.alice.id, k, "audio/wav", 6)
    async with vcs.engine.begin() as conn:
        await conn.execute(text("UPDATE blobs SET created_at = now() - interval '1 day'"))

    rng = __import__("random").Random(5)

    async def commit(i: int, k: str) -> bool:
        await asyncio.sleep(rng.random() * 0.12)
        try:
            await vcs.create_commit(world.alice.id, world.repo.id, branch=f"b{i}", stems=[Stem("drums", k)])
        except FailedPrecondition:
            return False
        return True

    async def collect(part: list[str], delay: float):
        await asyncio.sleep(delay)
        return await vcs.garbage_collect(dict.fromkeys(part), grace_period_s=60, dry_run=False)

    outcomes = await asyncio.gather(
        *(collect(keys[j::4], 0.04 * j) for j in range(4)),
        *(commit(i, k) for i, k in enumerate(keys)),
    )
    committed = [k for k, ok in zip(keys, outcomes[4:], strict=True) if ok]
    deleted = set().union(*(o.deletable for o in outcomes[:4]))
    assert not deleted & set(committed)
    for k in keys:
        assert local_store.exists(k) == (k not in deleted)
        assert (k in committed) != (k in deleted)  # each blob either got committed or collected


async def test_gc_waits_for_a_commit_in_flight(world, helpers, local_store) -> None:
    """A commit that has pinned a blob but not yet committed makes the collector wait, then keep it."""
    import asyncio

    from beatflow.vcs import commits
    from beatflow.vcs.model import Metadata
    from beatflow.vcs.repo_access import load_repo_as_user

    vcs = VcsService(world.vcs.engine, gc_grace_period_s=3600, delete_blob=local_store.delete)
    k = local_store.put_bytes(b"in flight")
    await vcs.register_blob(world.alice.id, k, "audio/wav", 9)
    async with vcs.engine.begin() as conn:
        await conn.execute(text("UPDATE blobs SET created_at = now() - interval '1 day'"))
    async with vcs.engine.begin() as conn:  # the service's own commit path, left open
        repo, username = await load_repo_as_user(conn, world.repo.id, world.alice.id, Role.WRITE)
        await commits.create_commit(
            conn,
            repo,
            world.alice.id,
            username,
            branch="main",
            expected_head="",
            message="in flight",
            stems=[Stem("drums", k)],
            mixdown_blob="",
            metadata=Metadata(),
        )
        gc = asyncio.create_task(vcs.garbage_collect({k: None}, grace_period_s=60, dry_run=False))
        async with vcs.engine.connect() as probe:  # wait until the collector blocks on the commit's share lock
            while not (await probe.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar():
                assert not gc.done()
                await asyncio.sleep(0.01)
    result = await gc
    assert result.deletable == [] and result.referenced == 1
    assert local_store.exists(k)
