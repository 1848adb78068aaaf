"""Rows and lanes for drawing commit graphs, checked on plain dicts of parents."""

from __future__ import annotations

from beatflow.gateway.graphlayout import assign_lanes, topo_order


def test_linear_history_is_one_lane_newest_first() -> None:
    parents = {"c": ["b"], "b": ["a"], "a": []}
    order = topo_order(parents, {"a": 1, "b": 2, "c": 3})
    assert order == ["c", "b", "a"]
    lanes, width = assign_lanes(order, parents)
    assert set(lanes.values()) == {0}
    assert width == 1


def test_branch_and_merge_use_two_lanes_and_rejoin() -> None:
    #   m (merge of d and f)
    #   |\
    #   d f
    #   | e
    #   |/
    #   b
    #   a
    parents = {"m": ["d", "f"], "d": ["b"], "f": ["e"], "e": ["b"], "b": ["a"], "a": []}
    ts = {"a": 1, "b": 2, "e": 3, "d": 4, "f": 5, "m": 6}
    order = topo_order(parents, ts)
    # children always before parents
    for child, ps in parents.items():
        for p in ps:
            assert order.index(child) < order.index(p)
    lanes, width = assign_lanes(order, parents)
    assert width == 2
    assert lanes["m"] == lanes["d"] == lanes["b"] == lanes["a"] == 0
    assert lanes["f"] == lanes["e"] == 1


def test_two_heads_and_parents_outside_the_window() -> None:
    parents = {"x": ["a"], "y": ["a"], "a": ["outside"]}
    order = topo_order(parents, {"x": 5, "y": 4, "a": 1})
    assert order == ["x", "y", "a"]
    lanes, width = assign_lanes(order, parents)
    assert lanes["x"] == 0 and lanes["y"] == 1 and lanes["a"] == 0
    assert width == 2
    assert assign_lanes([], {}) == ({}, 0)


def test_topo_order_ignores_timestamps_that_contradict_parents() -> None:
    # A parent with a later timestamp (clock skew) still comes after its child.
    parents = {"child": ["parent"], "parent": []}
    assert topo_order(parents, {"child": 1, "parent": 99}) == ["child", "parent"]
