"""Merge bases and ancestry on plain dicts, checked against git on the same graphs."""

from __future__ import annotations

import random

import pytest

from beatflow.common.errors import NotFound
from beatflow.vcs.graph import GraphIndex, generations, is_ancestor, merge_bases

# Criss-cross: B and C are both best common ancestors of D and E.
CRISS_CROSS = {"A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"], "E": ["C", "B"]}
# A longer history with two branches, a merge, and a branch off the merge.
BRANCHY = {
    "r": [],
    "m1": ["r"],
    "m2": ["m1"],
    "f1": ["m1"],
    "f2": ["f1"],
    "m3": ["m2", "f2"],
    "g1": ["m3"],
    "m4": ["m3"],
    "h1": ["f1"],
}


def test_criss_cross_gives_two_bases() -> None:
    assert sorted(merge_bases(CRISS_CROSS, "D", "E")) == ["B", "C"]


def test_simple_cases() -> None:
    assert merge_bases(BRANCHY, "g1", "m4") == ["m3"]
    assert merge_bases(BRANCHY, "m2", "f2") == ["m1"]
    assert merge_bases(BRANCHY, "m4", "h1") == ["f1"]
    assert merge_bases(BRANCHY, "m3", "f2") == ["f2"]  # fast-forward situation: one is the ancestor
    assert merge_bases(BRANCHY, "m3", "m3") == ["m3"]
    assert merge_bases({"a": [], "b": []}, "a", "b") == []  # unrelated histories


def test_unknown_commit_is_not_found() -> None:
    with pytest.raises(NotFound):
        merge_bases(BRANCHY, "m4", "nope")


def test_generations() -> None:
    gen = generations(BRANCHY)
    assert gen["r"] == 1 and gen["m3"] == 5 and gen["m4"] == 6 and gen["h1"] == 4


def _random_dag(rng: random.Random, n: int) -> dict[str, list[str]]:
    parents: dict[str, list[str]] = {}
    names: list[str] = []
    for i in range(n):
        name = f"c{i}"
        if i == 0 or rng.random() < 0.03:
            ps: list[str] = []
        else:
            window = names[max(0, i - 8) :]
            ps = [rng.choice(window)]
            if rng.random() < 0.3:
                other = rng.choice(names)
                if other not in ps:
                    ps.append(other)
        parents[name] = ps
        names.append(name)
    return parents


@pytest.mark.parametrize("graph", [CRISS_CROSS, BRANCHY])
def test_hand_built_graphs_match_git(git_graph, graph: dict[str, list[str]]) -> None:
    git = git_graph(graph)
    gen = generations(graph)
    index = GraphIndex()
    index.add({c: (gen[c], tuple(ps)) for c, ps in graph.items()})
    for a in graph:
        for b in graph:
            expected = git.merge_bases(a, b)
            assert set(merge_bases(graph, a, b)) == expected, (a, b)
            assert set(index.merge_bases(a, b)) == expected, (a, b)
            assert index.is_ancestor(a, b) == (expected == {a}), (a, b)
            assert is_ancestor(graph, a, b) == (expected == {a}), (a, b)


def test_random_dags_match_git(git_graph) -> None:
    rng = random.Random(1234)
    checked = multi = 0
    for round_ in range(2):
        graph = _random_dag(rng, 60)
        git = git_graph(graph)
        names = list(graph)
        for _ in range(30):
            a, b = rng.choice(names), rng.choice(names)
            ours = set(merge_bases(graph, a, b))
            assert ours == git.merge_bases(a, b), (round_, a, b)
            multi += len(ours) > 1
            checked += 1
    assert checked == 60
    assert multi > 0  # the random graphs did exercise several best common ancestors


def _lanes_dag(rng: random.Random, n: int) -> dict[str, list[str]]:
    """Long single-parent runs on a few lanes, with forks, merges between lanes and the odd new root."""
    parents: dict[str, list[str]] = {"c0": []}
    names = ["c0"]
    lanes = ["c0"]
    for i in range(1, n):
        name = f"c{i}"
        lane = rng.randrange(len(lanes))
        r = rng.random()
        if r < 0.002:
            ps: list[str] = []
        elif r < 0.012:
            ps = [rng.choice(names)]  # a new lane forks from anywhere
            lanes.append(name)
        else:
            ps = [lanes[lane]]
            if rng.random() < 0.04:
                other = rng.choice(lanes) if rng.random() < 0.7 else rng.choice(names)
                if other not in ps:
                    ps.append(other)
        if not ps or ps[0] != lanes[lane]:
            lanes.append(name)
        else:
            lanes[lane] = name
        parents[name] = ps
        names.append(name)
    return parents


def test_graph_index_matches_git_on_10k_commit_dags(git_graph) -> None:
    """The in-memory index (run skipping, first-parent jumps) against git merge-base --all."""
    rng = random.Random(77)
    for shape in (_lanes_dag, _random_dag):
        graph = shape(rng, 10_000)
        gen = generations(graph)
        index = GraphIndex()
        index.add({c: (gen[c], tuple(ps)) for c, ps in graph.items()})
        git = git_graph(graph)
        names = list(graph)
        tips = names[-200:]
        pairs = [(rng.choice(tips), rng.choice(tips)) for _ in range(25)]
        pairs += [(rng.choice(names), rng.choice(tips)) for _ in range(25)]
        for a, b in pairs:
            expected = git.merge_bases(a, b)
            assert set(index.merge_bases(a, b)) == expected, (shape.__name__, a, b)
            assert index.is_ancestor(a, b) == (expected == {a}), (shape.__name__, a, b)
            assert set(merge_bases(graph, a, b)) == expected, (shape.__name__, a, b)


def test_graph_index_ancestry_with_labels_added_in_batches() -> None:
    """Reachability labels (whole relabels and per-batch labels mixed) never turn a "yes" into a "no"."""
    rng = random.Random(99)
    for shape in (_lanes_dag, _random_dag):
        graph = shape(rng, 2_000)
        gen = generations(graph)
        order = sorted(graph, key=lambda c: gen[c])
        bit = {c: 1 << i for i, c in enumerate(order)}
        reach: dict[str, int] = {}  # each commit's ancestors (itself included) as a bit set
        for c in order:
            reach[c] = bit[c]
            for p in graph[c]:
                reach[c] |= reach[p]

        def reaches(a: str, d: str, reach: dict[str, int] = reach, bit: dict[str, int] = bit) -> bool:
            return bool(reach[d] & bit[a])

        index = GraphIndex()
        at = 0
        for size in (300, 40, 1, 1, 700, 5, 1, 60, 2_000):  # a big batch relabels all, a small one only itself
            batch = order[at : at + size]
            index.add({c: (gen[c], tuple(graph[c])) for c in batch})
            at += size
            known = order[:at]
            for _ in range(300):
                a, d = rng.choice(known), rng.choice(known)
                assert index.is_ancestor(a, d) == reaches(a, d), (shape.__name__, at, a, d)
        names = list(graph)
        pairs = [(rng.choice(names), rng.choice(names)) for _ in range(2_000)]
        unrelated = [(a, d) for a, d in pairs if not reaches(a, d)]
        index._ensure_labels()
        cut = sum(not index._may_reach(index.pos[d], index.pos[a]) for a, d in unrelated)
        assert cut > len(unrelated) // 2  # the labels alone answer most "no"s


def test_graph_index_ancestry_each_walk_alone() -> None:
    """The walk down from the descendant and the walk up from the ancestor each answer every pair."""
    rng = random.Random(3)
    for g in (BRANCHY, _random_dag(rng, 300), _lanes_dag(rng, 600)):
        gen = generations(g)
        reach: dict[str, set[str]] = {}
        for c in sorted(g, key=lambda c: gen[c]):
            reach[c] = {c}.union(*(reach[p] for p in g[c]))
        index = GraphIndex()
        index.add({c: (gen[c], tuple(ps)) for c, ps in g.items()})
        index._ensure_labels()
        names = list(g)
        for _ in range(1_500):
            a, d = rng.choice(names), rng.choice(names)
            want = a in reach[d]
            x, y = index.pos[a], index.pos[d]
            if x == y or gen[d] <= gen[a] or not index._may_reach(y, x):
                assert want == (x == y), (a, d)
                continue
            for walk in (index._walk_down(x, y), index._walk_up(x, y)):
                try:
                    while True:
                        next(walk)
                except StopIteration as stop:
                    assert stop.value == want, (a, d)
