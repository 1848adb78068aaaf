"""Rows and lanes for drawing a commit graph (newest commit on row 0).

Commits are ordered children-before-parents (newest first among the ready
ones). Each lane waits for one commit id: a commit takes the leftmost lane
waiting for it (or a free one), hands that lane on to its first parent, and
opens lanes for further parents not already awaited. Branches then run down
their own lane and merges join them, as in ``git log --graph``.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def topo_order(parents: Mapping[str, Sequence[str]], timestamps: Mapping[str, float]) -> list[str]:
    """Every commit after all its children; among ready commits, newest first.

    Parents missing from ``parents`` (outside the fetched window) are ignored.
    """
    children_left = dict.fromkeys(parents, 0)
    for ps in parents.values():
        for p in set(ps):
            if p in children_left:
                children_left[p] += 1
    ready = [(-timestamps.get(n, 0.0), n) for n, count in children_left.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for p in dict.fromkeys(parents[node]):
            if p in children_left:
                children_left[p] -= 1
                if children_left[p] == 0:
                    heapq.heappush(ready, (-timestamps.get(p, 0.0), p))
    return order


def assign_lanes(order: Sequence[str], parents: Mapping[str, Sequence[str]]) -> tuple[dict[str, int], int]:
    """Lane of each commit in ``order``, and how many lanes the drawing needs."""
    lanes: list[str | None] = []
    placed: dict[str, int] = {}
    width = 0
    known = set(order)

    def free_slot() -> int:
        for i, waiting in enumerate(lanes):
            if waiting is None:
                return i
        lanes.append(None)
        return len(lanes) - 1

    for node in order:
        waiting_here = [i for i, w in enumerate(lanes) if w == node]
        lane = waiting_here[0] if waiting_here else free_slot()
        for i in waiting_here[1:]:
            lanes[i] = None
        placed[node] = lane
        node_parents = [p for p in dict.fromkeys(parents.get(node, ())) if p in known]
        lanes[lane] = node_parents[0] if node_parents else None
        for p in node_parents[1:]:
            if p not in lanes:
                lanes[free_slot()] = p
        width = max(width, len(lanes))
        while lanes and lanes[-1] is None:
            lanes.pop()
    return placed, max(width, 1 if order else 0)
