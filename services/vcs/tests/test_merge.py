"""Merge bases on the database (checked against git), merges, reverts."""

from __future__ import annotations

import random

import pytest

from beatflow.common.errors import FailedPrecondition, InvalidArgument, NotFound
from beatflow.vcs.commits import build_commit, store_commit
from beatflow.vcs.graph import generations
from beatflow.vcs.graph import merge_bases as pure_merge_bases
from beatflow.vcs.model import Metadata, Strategy

CRISS_CROSS = {"A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"], "E": ["C", "B"], "F": ["D"], "G": ["E"]}


async def insert_dag(world, helpers, parents: dict[str, list[str]]) -> dict[str, str]:
    """Store a parent map as commits of the world's repository (one transaction); name -> commit id."""
    gen = generations(parents)
    ids: dict[str, str] = {}
    async with world.vcs.engine.begin() as conn:
        for i, name in enumerate(sorted(parents, key=lambda n: (gen[n], n))):
            c = build_commit(
                parents=[ids[p] for p in parents[name]],
                parent_generations=[gen[p] for p in parents[name]],
                stems=[helpers.stem("drums", name)],
                mixdown_blob="",
                metadata=Metadata(),
                author_id=world.alice.id,
                author_username="alice",
                message=name,
                repo_id=world.repo.id,
                timestamp=1000.0 + i,
            )
            assert c.generation == gen[name]
            await store_commit(conn, world.repo.id, c)
            ids[name] = c.id
    return ids


async def test_db_merge_bases_match_git(world, helpers, git_graph) -> None:
    rng = random.Random(99)
    graph: dict[str, list[str]] = dict(CRISS_CROSS)
    names = list(graph)
    for i in range(40):  # grow a random DAG on top of the criss-cross
        ps = [rng.choice(names[-6:])]
        if rng.random() < 0.35 and (other := rng.choice(names)) not in ps:
            ps.append(other)
        graph[f"n{i}"] = ps
        names.append(f"n{i}")
    ids = await insert_dag(world, helpers, graph)
    by_id = {v: k for k, v in ids.items()}
    git = git_graph(graph)
    got = await world.vcs.merge_base(world.alice.id, world.repo.id, ids["F"], ids["G"])
    assert {by_id[c] for c in got} == {"B", "C"} == git.merge_bases("F", "G")
    pairs = [(rng.choice(names), rng.choice(names)) for _ in range(40)]
    for a, b in pairs:
        got = await world.vcs.merge_base(world.alice.id, world.repo.id, ids[a], ids[b])
        expected = git.merge_bases(a, b)
        assert {by_id[c] for c in got} == expected == set(pure_merge_bases(graph, a, b)), (a, b)
        is_anc = await world.vcs.is_ancestor(world.alice.id, world.repo.id, ids[a], ids[b])
        assert is_anc == (expected == {a}), (a, b)  # git merge-base --is-ancestor


async def test_deep_merge_base_from_the_graph_index(world, helpers) -> None:
    """A base far below both tips: the index loads the ancestry in windows and answers from memory."""
    graph: dict[str, list[str]] = {"root": []}
    prev_a = prev_b = "root"
    for i in range(300):
        graph[f"a{i}"], graph[f"b{i}"] = [prev_a], [prev_b]
        prev_a, prev_b = f"a{i}", f"b{i}"
    ids = await insert_dag(world, helpers, graph)
    from beatflow.vcs.history import graph_index

    vcs, actor, repo = world.vcs, world.alice.id, world.repo.id
    assert await vcs.merge_base(actor, repo, ids["a299"], ids["b299"]) == [ids["root"]]
    assert all(c in graph_index() for c in ids.values())  # the whole ancestry, loaded once
    assert await vcs.merge_base(actor, repo, ids["a299"], ids["a7"]) == [ids["a7"]]
    assert await vcs.is_ancestor(actor, repo, ids["root"], ids["b299"])
    assert await vcs.is_ancestor(actor, repo, ids["a3"], ids["a299"])
    assert not await vcs.is_ancestor(actor, repo, ids["a3"], ids["b299"])
    assert not await vcs.is_ancestor(actor, repo, ids["a299"], ids["a3"])


async def _setup_branches(world):
    base = await world.commit("base", drums="d0", bass="b0", keys="k0")
    await world.vcs.create_branch(world.alice.id, world.repo.id, "feature", base.id)
    return base


async def test_fast_forward_up_to_date_and_no_ff(world) -> None:
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    base = await _setup_branches(world)
    f1 = await world.commit("f1", branch="feature", drums="d1")
    out = await vcs.merge(a, r, into_branch="main", from_ref="feature", dry_run=True)
    assert out.fast_forward and not out.merged and out.dry_run
    assert (await vcs.checkout(a, r)).id == base.id  # dry run wrote nothing
    out = await vcs.merge(a, r, into_branch="main", from_ref="feature")
    assert out.merged and out.fast_forward and out.commit is not None and out.commit.id == f1.id
    assert (await vcs.checkout(a, r)).id == f1.id
    out = await vcs.merge(a, r, into_branch="main", from_ref="feature")
    assert out.up_to_date and not out.merged
    f2 = await world.commit("f2", branch="feature", bass="b2")
    out = await vcs.merge(a, r, into_branch="main", from_ref="feature", no_fast_forward=True)
    assert out.merged and not out.fast_forward and out.commit is not None
    assert out.commit.parent_ids == (f1.id, f2.id)


async def test_three_way_merge_conflicts_and_strategies(world, helpers) -> None:
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    base = await _setup_branches(world)
    m1 = await world.commit("main: drums+bass", drums="dm", bass="bm")
    f1 = await world.commit("feature: drums+keys+vox", branch="feature", drums="df", keys="kf", vox="vf")
    out = await vcs.merge(a, r, into_branch="main", from_ref="feature")
    assert not out.merged and out.merge_bases == [base.id]
    assert [(c.name, c.base_blob, c.ours_blob, c.theirs_blob) for c in out.conflicts] == [
        ("drums", helpers.blob("d0"), helpers.blob("dm"), helpers.blob("df"))
    ]
    assert (await vcs.checkout(a, r)).id == m1.id  # nothing written on conflict
    with pytest.raises(FailedPrecondition):  # CAS on the target branch
        await vcs.merge(a, r, into_branch="main", from_ref="feature", expected_head=base.id)
    preview = await vcs.merge(
        a, r, into_branch="main", from_ref="feature", stem_strategies={"drums": Strategy.THEIRS}, dry_run=True
    )
    assert preview.commit is not None and not preview.merged and preview.conflicts == []
    assert (await vcs.checkout(a, r)).id == m1.id
    out = await vcs.merge(
        a, r, into_branch="main", from_ref="feature", expected_head=m1.id, stem_strategies={"drums": Strategy.THEIRS}
    )
    assert out.merged and out.commit is not None and out.commit.parent_ids == (m1.id, f1.id)
    stems = {s.name: s.blob_key for s in out.commit.stems}
    assert stems == {
        "drums": helpers.blob("df"),  # conflict resolved with theirs
        "bass": helpers.blob("bm"),  # ours only
        "keys": helpers.blob("kf"),  # theirs only
        "vox": helpers.blob("vf"),  # added by theirs
    }
    assert (await vcs.checkout(a, r)).id == out.commit.id
    # default strategy ours
    await vcs.create_branch(a, r, "other", base.id)
    await world.commit("other drums", branch="other", drums="do")
    out = await vcs.merge(a, r, into_branch="main", from_ref="other", default_strategy=Strategy.OURS)
    assert out.merged and out.commit is not None
    assert {s.name: s.blob_key for s in out.commit.stems}["drums"] == helpers.blob("df")
    with pytest.raises(NotFound):
        await vcs.merge(a, r, into_branch="main", from_ref="nope")
    with pytest.raises(InvalidArgument):
        await vcs.merge(a, r, into_branch="main", from_ref="other", stem_strategies={"bad/name": Strategy.OURS})


async def test_criss_cross_merge(world) -> None:
    """Two best bases: stems the bases agree on merge normally; where they differ, only equal sides merge."""
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    await _setup_branches(world)
    b = await world.commit("B", drums="dB")
    c = await world.commit("C", branch="feature", bass="bC")
    d = await vcs.merge(a, r, into_branch="main", from_ref=c.id, no_fast_forward=True)
    e = await vcs.merge(a, r, into_branch="feature", from_ref=b.id, no_fast_forward=True)
    assert d.commit is not None and e.commit is not None
    f = await world.commit("F", keys="kF")
    out = await vcs.merge(a, r, into_branch="main", from_ref="feature")
    assert sorted(out.merge_bases) == sorted([b.id, c.id])
    assert out.merged and out.commit is not None and out.commit.parent_ids == (f.id, e.commit.id)


async def test_revert(world, helpers) -> None:
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    c1 = await world.commit("init", drums="d1", bass="b1")
    c2 = await world.commit("new drums + vox", drums="d2", vox="v2")
    c3 = await world.commit("new bass", bass="b3")
    rev = await vcs.revert(a, r, commit_id=c2.id)
    assert rev.parent_ids == (c3.id,) and "Revert" in rev.message
    assert {s.name: s.blob_key for s in rev.stems} == {"drums": helpers.blob("d1"), "bass": helpers.blob("b3")}
    with pytest.raises(FailedPrecondition):  # already reverted
        await vcs.revert(a, r, commit_id=c2.id)
    await world.commit("bass again", bass="b4")
    with pytest.raises(FailedPrecondition) as err:  # c3's bass was changed since: conflict
        await vcs.revert(a, r, commit_id=c3.id)
    assert "bass" in err.value.message
    with pytest.raises(FailedPrecondition):
        await vcs.revert(a, r, commit_id=c1.id, expected_head=c1.id)


async def test_dag_log_pages_equal_one_long_page(world, helpers) -> None:
    """Paging through a DAG with merges (tokens carry the frontier) gives exactly the one-page order."""
    from beatflow.vcs.page_tokens import decode_token, encode_token

    rng = random.Random(3)
    graph: dict[str, list[str]] = {"r": []}
    names = ["r"]
    for i in range(120):
        ps = [rng.choice(names[-5:])]
        if rng.random() < 0.3 and (other := rng.choice(names)) not in ps:
            ps.append(other)
        graph[f"n{i}"] = ps
        names.append(f"n{i}")
    graph["top"] = [n for n in names if not any(n in ps for ps in graph.values())]  # merge every tip
    ids = await insert_dag(world, helpers, graph)
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    whole, token = await vcs.log(a, r, ids["top"], page_size=500)
    assert token == "" and len(whole) == len(graph)
    for size in (1, 7, 50):
        paged: list[str] = []
        token = ""
        while True:
            page, token = await vcs.log(a, r, ids["top"], page_size=size, page_token=token)
            paged += [c.id for c in page]
            if not token:
                break
        assert paged == [c.id for c in whole], size
    # A forged frontier naming another repository's commit reveals nothing of it.
    bobs = await vcs.create_repository(world.bob.id, "secret")
    secret = await world.commit("secret", repo=bobs.id, actor=world.bob.id, drums="s")
    _, token = await vcs.log(a, r, ids["top"], page_size=5)
    forged = {**decode_token(token), "f": [secret.id]}
    page, _ = await vcs.log(a, r, ids["top"], page_size=5, page_token=encode_token(forged))
    assert secret.id not in {c.id for c in page}
