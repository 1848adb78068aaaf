"""Commits, refs, history and their errors, on real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from beatflow.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from beatflow.vcs.model import Metadata


async def count(world, table: str) -> int:
    async with world.vcs.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_commit_roundtrip_and_content(world, helpers) -> None:
    meta = Metadata(bpm=120.0, key="A minor", duration_s=8.0, sample_rate=32000, generation_json='{"prompt": "lofi"}')
    c1 = await world.vcs.create_commit(
        world.alice.id,
        world.repo.id,
        message="first take",
        stems=[helpers.stem("drums", "d1"), helpers.stem("bass", "b1")],
        mixdown_blob=helpers.blob("mix1"),
        metadata=meta,
    )
    assert c1.parent_ids == () and len(c1.id) == 64 and c1.author_username == "alice"
    got = await world.vcs.get_commit(world.alice.id, c1.id, world.repo.id)
    assert got.stems == c1.stems and got.metadata == meta and got.mixdown_blob == helpers.blob("mix1")
    assert got.timestamp == c1.timestamp and got.id == c1.id
    assert (await world.vcs.get_commit(world.alice.id, c1.id)).id == c1.id  # found without naming the repo
    assert (await world.vcs.checkout(world.alice.id, world.repo.id)).id == c1.id
    # inherit + remove + replace
    c2 = await world.vcs.create_commit(
        world.alice.id,
        world.repo.id,
        expected_head=c1.id,
        message="swap drums, drop bass, add vox",
        stems=[helpers.stem("drums", "d2"), helpers.stem("vox", "v1")],
        inherit_stems=True,
        remove_stems=["bass"],
    )
    assert {s.name: s.blob_key for s in c2.stems} == {"drums": helpers.blob("d2"), "vox": helpers.blob("v1")}
    assert c2.parent_ids == (c1.id,) and c2.generation == 2
    assert (await world.vcs.checkout(world.alice.id, world.repo.id, c1.id)).id == c1.id
    d = await world.vcs.diff(world.alice.id, world.repo.id, c1.id, "main")
    assert {(s.name, s.kind.name) for s in d.stems} == {("bass", "REMOVED"), ("drums", "CHANGED"), ("vox", "ADDED")}
    assert {m.field for m in d.metadata} >= {"bpm", "key", "mixdown_blob"}


async def test_stale_head_is_refused_and_nothing_is_written(world) -> None:
    c1 = await world.commit("one", drums="d1")
    c2 = await world.commit("two", drums="d2")
    before = [await count(world, t) for t in ("commits", "commit_stems", "repo_commits", "blobs")]
    with pytest.raises(FailedPrecondition) as err:
        await world.commit("late", expected=c1.id, drums="d3")
    assert c2.id in err.value.message and "stale" in err.value.message
    with pytest.raises(FailedPrecondition) as err:  # "branch must not exist yet"
        await world.vcs.create_commit(world.alice.id, world.repo.id, expected_head="", message="x")
    assert c2.id in err.value.message
    with pytest.raises(FailedPrecondition):  # naming a head on a branch that does not exist
        await world.commit("nope", branch="ghost", expected=c1.id, drums="d4")
    after = [await count(world, t) for t in ("commits", "commit_stems", "repo_commits", "blobs")]
    assert after == before
    refs = {r.name: r.commit_id for r in await world.vcs.list_refs(world.alice.id, world.repo.id)}
    assert refs == {"main": c2.id}


async def test_bad_input(world, helpers) -> None:
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    good = helpers.stem("drums")
    for bad in ("bad name", "a..b", "x.lock", "-x", "a/", "/a", "@", "a@{1}", "a~1", "tab\tx", "x.", "a//b", "a" * 64):
        with pytest.raises(InvalidArgument):
            await vcs.create_commit(a, r, branch=bad, stems=[good])
    for bad in ("", " drums", "a/b", "x" * 65, "🥁"):
        with pytest.raises(InvalidArgument):
            await vcs.create_commit(a, r, stems=[helpers.stem(bad)])
    bad_stem = helpers.stem("drums")
    with pytest.raises(InvalidArgument):
        await vcs.create_commit(a, r, stems=[type(bad_stem)("drums", "not-a-sha")])
    with pytest.raises(InvalidArgument):
        await vcs.create_commit(a, r, stems=[good, good])
    with pytest.raises(InvalidArgument):
        await vcs.create_commit(a, r, stems=[good], metadata=Metadata(generation_json="{oops"))
    with pytest.raises(InvalidArgument):
        await vcs.create_commit(a, r, stems=[good], expected_head="main")
    for bad in ("", "has space", "..", "x.git", "a" * 101):
        with pytest.raises(InvalidArgument):
            await vcs.create_repository(a, bad)
    for bad in ("", "-x", "a b", "x" * 40):
        with pytest.raises(InvalidArgument):
            await vcs.create_user(bad, "h")
    assert await count(world, "commits") == 0
    # Names git accepts are accepted.
    for ok in ("feature/new-drums", "v1.0", "mix_2", "a.b-c/d"):
        await vcs.create_commit(a, r, branch=ok, stems=[good], message=ok)


async def test_refs(world) -> None:
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    with pytest.raises(NotFound):  # unborn default branch
        await vcs.checkout(a, r)
    for first_parent in (True, False):  # its history says so, whether asked by name or not
        for ref in ("", "main"):
            with pytest.raises(NotFound, match="'main' has no commits yet"):
                await vcs.log(a, r, ref, first_parent=first_parent)
    with pytest.raises(NotFound, match="no branch, tag or commit 'nope'"):
        await vcs.log(a, r, "nope")
    c1 = await world.commit("one", drums="d1")
    c2 = await world.commit("two", drums="d2")
    feat = await vcs.create_branch(a, r, "feature", c1.id)
    assert feat.commit_id == c1.id
    assert (await vcs.create_branch(a, r, "copy")).commit_id == c2.id  # default: from the default branch
    with pytest.raises(AlreadyExists):
        await vcs.create_branch(a, r, "feature", c2.id)
    with pytest.raises(NotFound):
        await vcs.create_branch(a, r, "x", "no-such-ref")
    tag = await vcs.create_tag(a, r, "v1", "feature", "first release")
    assert tag.is_tag and tag.commit_id == c1.id and tag.message == "first release"
    with pytest.raises(AlreadyExists):
        await vcs.create_tag(a, r, "v1", "main")
    assert (await vcs.checkout(a, r, "v1")).id == c1.id
    renamed = await vcs.rename_branch(a, r, "feature", "feature/drums")
    assert renamed.name == "feature/drums" and renamed.commit_id == c1.id
    with pytest.raises(AlreadyExists):
        await vcs.rename_branch(a, r, "copy", "main")
    with pytest.raises(NotFound):
        await vcs.rename_branch(a, r, "feature", "again")
    with pytest.raises(FailedPrecondition):
        await vcs.delete_branch(a, r, "main")
    assert (await vcs.delete_branch(a, r, "copy")).commit_id == c2.id
    with pytest.raises(NotFound):
        await vcs.delete_branch(a, r, "copy")
    await vcs.rename_branch(a, r, "main", "trunk")  # renaming the default branch moves the default
    assert (await vcs.get_repository(a, r)).default_branch == "trunk"
    assert (await vcs.checkout(a, r)).id == c2.id
    refs = await vcs.list_refs(a, r)
    assert [(x.name, x.is_tag) for x in refs] == [("feature/drums", False), ("trunk", False), ("v1", True)]
    assert (await vcs.delete_tag(a, r, "v1")).commit_id == c1.id
    with pytest.raises(NotFound):
        await vcs.delete_tag(a, r, "v1")


async def test_log_pagination_first_parent_and_dag(world) -> None:
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    mains = [await world.commit(f"m{i}", drums=f"d{i}") for i in range(5)]
    await vcs.create_branch(a, r, "side", mains[1].id)
    sides = [await world.commit(f"s{i}", branch="side", vox=f"v{i}") for i in range(3)]
    merge = await vcs.merge(a, r, into_branch="main", from_ref="side")
    assert merge.merged and merge.commit is not None and not merge.fast_forward
    after = [await world.commit(f"a{i}", drums=f"x{i}") for i in range(2)]
    # first-parent: only the mainline, pages of 3
    seen: list[str] = []
    token = ""
    while True:
        page, token = await vcs.log(a, r, first_parent=True, page_size=3, page_token=token)
        assert len(page) <= 3
        seen += [c.message for c in page]
        if not token:
            break
    assert seen == ["a1", "a0", merge.commit.message, "m4", "m3", "m2", "m1", "m0"]
    # full DAG: every ancestor once, children before parents, pages of 4
    all_ids: list[str] = []
    token = ""
    while True:
        page, token = await vcs.log(a, r, page_size=4, page_token=token)
        all_ids += [c.id for c in page]
        if not token:
            break
    expected = {c.id for c in [*mains, *sides, merge.commit, *after]}
    assert len(all_ids) == len(expected) and set(all_ids) == expected
    pos = {cid: i for i, cid in enumerate(all_ids)}
    commits = {c.id: c for c in [*mains, *sides, merge.commit, *after]}
    for cid, c in commits.items():
        for p in c.parent_ids:
            assert pos[cid] < pos[p]
    # Pages stay stable while the branch moves on.
    first, token = await vcs.log(a, r, page_size=4)
    await world.commit("new", drums="new")
    rest, _ = await vcs.log(a, r, page_size=100, page_token=token)
    assert [c.id for c in first + rest] == all_ids
    # log from a tag/branch/commit, and bad tokens
    side_log, _ = await vcs.log(a, r, "side")
    assert [c.message for c in side_log] == ["s2", "s1", "s0", "m1", "m0"]
    with pytest.raises(InvalidArgument):
        await vcs.log(a, r, page_token="garbage!")
    with pytest.raises(InvalidArgument):  # a first-parent token in DAG mode
        _, fp_token = await vcs.log(a, r, first_parent=True, page_size=1)
        await vcs.log(a, r, page_token=fp_token)
    # graph for drawing
    nodes, edges, refs = await vcs.commit_graph(a, r, 100)
    assert len(nodes) == len(expected) + 1
    assert (merge.commit.id, sides[-1].id) in edges and (merge.commit.id, mains[-1].id) in edges
    assert {x.name for x in refs} == {"main", "side"}
    # ancestry
    assert await vcs.is_ancestor(a, r, sides[0].id, "main")
    assert not await vcs.is_ancestor(a, r, "main", "side")
    assert await vcs.is_ancestor(a, r, "side", "side")


async def test_same_content_is_the_same_commit(world, helpers) -> None:
    """Identical content (parents, stems, author, message, timestamp) hashes to one commit row."""
    from beatflow.vcs.commits import build_commit, store_commit

    stems = [helpers.stem("drums")]
    one = build_commit(
        parents=[],
        parent_generations=[],
        stems=stems,
        mixdown_blob="",
        metadata=Metadata(),
        author_id=world.alice.id,
        author_username="alice",
        message="m",
        repo_id=world.repo.id,
        timestamp=1000.0,
    )
    two = build_commit(
        parents=[],
        parent_generations=[],
        stems=list(stems),
        mixdown_blob="",
        metadata=Metadata(),
        author_id=world.alice.id,
        author_username="alice",
        message="m",
        repo_id=world.repo.id,
        timestamp=1000.0,
    )
    assert one.id == two.id
    async with world.vcs.engine.begin() as conn:
        await store_commit(conn, world.repo.id, one)
        await store_commit(conn, world.repo.id, two)
    assert await count(world, "commits") == 1 and await count(world, "commit_stems") == 1


async def test_blame(world) -> None:
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    c1 = await world.commit("init", drums="d1", bass="b1", keys="k1")
    c2 = await world.commit("new drums", drums="d2", bass="b1", keys="k1")
    await vcs.create_branch(a, r, "side", c2.id)
    s1 = await world.commit("side bass", branch="side", drums="d2", bass="b2", keys="k1")
    c3 = await world.commit("keys", drums="d2", bass="b1", keys="k3")
    merged = await vcs.merge(a, r, into_branch="main", from_ref="side")
    assert merged.merged and merged.commit is not None
    blame = {e.stem: e.commit.id for e in await vcs.blame(a, r)}
    assert blame == {"drums": c2.id, "bass": s1.id, "keys": c3.id}
    assert {e.stem: e.commit.id for e in await vcs.blame(a, r, c1.id)} == {"drums": c1.id, "bass": c1.id, "keys": c1.id}


async def test_removing_a_stem_the_parent_lacks_is_a_conflict(world, helpers) -> None:
    """A well-formed request that the parent's state refuses: FailedPrecondition (HTTP 409), not 400."""
    c1 = await world.commit("one", drums="d1")
    for inherit in (True, False):
        with pytest.raises(FailedPrecondition, match="no such stem"):
            await world.vcs.create_commit(
                world.alice.id,
                world.repo.id,
                expected_head=c1.id,
                message="drop bass",
                stems=[helpers.stem("vox", "v1")],
                inherit_stems=inherit,
                remove_stems=["bass" if inherit else "drums"],
            )


async def test_quick_commit_onto_a_known_parent_checks_access_and_branch(world, helpers) -> None:
    """A strict commit onto a parent this process holds is one statement that checks access itself:
    strangers, readers and unknown users get the answers of the full path, and nothing is written."""
    from beatflow.common.errors import PermissionDenied, Unauthenticated
    from beatflow.vcs import commits
    from beatflow.vcs.model import Role

    vcs, r = world.vcs, world.repo.id
    c1 = await world.commit("one", drums="d1", bass="b1")
    assert commits.cached(c1.id) == c1  # the next commit onto it reads nothing first
    await vcs.set_collaborator(world.alice.id, r, "carol", Role.READ)
    before = [await count(world, t) for t in ("commits", "commit_stems", "repo_commits", "blobs", "activity")]
    for actor, error in (
        (world.bob.id, NotFound),  # cannot see the private repository
        (world.carol.id, PermissionDenied),  # reads it, may not write
        ("f" * 32, NotFound),  # no such user (so no reader of a private repository)
        ("", Unauthenticated),
    ):
        with pytest.raises(error):
            await vcs.create_commit(
                actor, r, expected_head=c1.id, message="x", stems=[helpers.stem("drums", "dx")], inherit_stems=True
            )
        with pytest.raises(error):  # even when the request would also fail on the parent's state
            await vcs.create_commit(actor, r, expected_head=c1.id, message="x", remove_stems=["vox"])
    assert [await count(world, t) for t in ("commits", "commit_stems", "repo_commits", "blobs", "activity")] == before
    # The default branch is found by the statement; a named branch is moved by name.
    c2 = await vcs.create_commit(
        world.alice.id, r, expected_head=c1.id, message="two", stems=[helpers.stem("drums", "d2")], inherit_stems=True
    )
    assert c2.author_username == "alice" and c2.parent_ids == (c1.id,) and c2.generation == 2
    assert {s.name: s.blob_key for s in c2.stems} == {"drums": helpers.blob("d2"), "bass": helpers.blob("b1")}
    assert (await vcs.get_commit(world.alice.id, c2.id, r)) == c2
    await vcs.create_branch(world.alice.id, r, "side", c1.id)
    c3 = await vcs.create_commit(world.alice.id, r, branch="side", expected_head=c1.id, message="side", stems=[])
    refs = {x.name: x.commit_id for x in await vcs.list_refs(world.alice.id, r)}
    assert refs == {"main": c2.id, "side": c3.id}
    with pytest.raises(FailedPrecondition) as err:  # stale: names the head
        await vcs.create_commit(world.alice.id, r, expected_head=c1.id, message="late", stems=[])
    assert c2.id in err.value.message and "'main'" in err.value.message
    with pytest.raises(FailedPrecondition, match="no such stem"):
        await vcs.create_commit(world.alice.id, r, expected_head=c2.id, message="x", remove_stems=["vox"])
    with pytest.raises(InvalidArgument):  # a value PostgreSQL refuses (NUL) is the caller's error here too
        await vcs.create_commit(world.alice.id, r, expected_head=c2.id, message="a\x00b", stems=[])
