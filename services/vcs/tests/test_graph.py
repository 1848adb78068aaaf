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
