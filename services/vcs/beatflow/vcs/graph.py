"""Commit-graph algorithms over plain lookups: merge bases and ancestry.

The algorithms are written once, as generators that *yield* the commit ids
whose ``(generation, parents)`` they need and are not yet in the shared
``nodes`` dict. A driver fills ``nodes`` and resumes them: :func:`run_sync`
from a mapping or function (tests on dicts), :func:`run_async` from the
database in batches (:mod:`beatflow.vcs.history`).

Generation numbers (root = 1, else 1 + max over parents) give a traversal
order in which every descendant is seen before its ancestors, so the
"paint down to common" walk (as in git) finds exactly the best common
ancestors and can stop as soon as every queued commit is known to lie below
a result.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, MutableMapping, Sequence

from beatflow.common.errors import NotFound

Node = tuple[int, tuple[str, ...]]  # (generation, parent ids)
Steps = Generator[set[str], None, list[str]]
BoolSteps = Generator[set[str], None, bool]

_P1, _P2, _STALE, _RESULT = 1, 2, 4, 8


def _need(nodes: Mapping[str, Node], ids: Iterable[str]) -> Generator[set[str], None, None]:
    missing = {i for i in ids if i not in nodes}
    if missing:
        yield missing


def merge_base_steps(a: str, b: str, nodes: Mapping[str, Node]) -> Steps:
    """All best common ancestors of ``a`` and ``b`` (git merge-base --all), highest generation first."""
    yield from _need(nodes, (a, b))
    if a == b:
        return [a]
    flags: dict[str, int] = {a: _P1}
    flags[b] = flags.get(b, 0) | _P2
    heap: list[tuple[int, str]] = []
    for c in (a, b):
        heapq.heappush(heap, (-nodes[c][0], c))
    results: list[str] = []
    while any(not flags[c] & _STALE for _, c in heap):
        _, c = heapq.heappop(heap)
        f = flags[c] & (_P1 | _P2 | _STALE)
        if f == _P1 | _P2:
            if not flags[c] & _RESULT:
                flags[c] |= _RESULT
                results.append(c)
            f |= _STALE
            flags[c] |= _STALE
        parents = nodes[c][1]
        yield from _need(nodes, parents)
        for p in parents:
            pf = flags.get(p, 0)
            if pf & f == f:
                continue
            flags[p] = pf | f
            heapq.heappush(heap, (-nodes[p][0], p))
    return results


def is_ancestor_steps(ancestor: str, descendant: str, nodes: Mapping[str, Node]) -> BoolSteps:
    """True when ``ancestor`` is reachable from ``descendant`` (a commit is its own ancestor)."""
    yield from _need(nodes, (ancestor, descendant))
    if ancestor == descendant:
        return True
    floor = nodes[ancestor][0]
    if nodes[descendant][0] <= floor:
        return False
    seen = {descendant}
    stack = [descendant]
    while stack:
        c = stack.pop()
        parents = nodes[c][1]
        if ancestor in parents:
            return True
        yield from _need(nodes, parents)
        for p in parents:
            if p not in seen and nodes[p][0] > floor:
                seen.add(p)
                stack.append(p)
    return False


def run_sync(
    steps: Generator[set[str], None, object], nodes: MutableMapping[str, Node], lookup: Callable[[str], Node]
) -> object:
    """Drive ``steps`` with a synchronous ``lookup`` (raises NotFound for unknown ids)."""
    try:
        need = next(steps)
        while True:
            for cid in need:
                nodes[cid] = lookup(cid)
            need = steps.send(None)
    except StopIteration as stop:
        return stop.value


async def run_async(
    steps: Generator[set[str], None, object],
    nodes: MutableMapping[str, Node],
    load: Callable[[set[str]], Awaitable[Mapping[str, Node]]],
) -> object:
    """Drive ``steps`` with a batched async loader (which may return more than asked: prefetch)."""
    try:
        need = next(steps)
        while True:
            found = await load(need)
            nodes.update(found)
            missing = need - nodes.keys()
            if missing:
                raise NotFound(f"commit not found: {sorted(missing)[0]}")
            need = steps.send(None)
    except StopIteration as stop:
        return stop.value


def generations(parents: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Generation numbers for a whole parent map (iterative, no recursion limit)."""
    gen: dict[str, int] = {}
    for start in parents:
        stack = [start]
        while stack:
            c = stack[-1]
            if c in gen:
                stack.pop()
                continue
            todo = [p for p in parents[c] if p not in gen]
            if todo:
                stack.extend(todo)
                continue
            gen[c] = 1 + max((gen[p] for p in parents[c]), default=0)
            stack.pop()
    return gen


def _dict_lookup(parents: Mapping[str, Sequence[str]]) -> Callable[[str], Node]:
    gen = generations(parents)

    def lookup(cid: str) -> Node:
        if cid not in parents:
            raise NotFound(f"commit not found: {cid}")
        return gen[cid], tuple(parents[cid])

    return lookup


def merge_bases(parents: Mapping[str, Sequence[str]], a: str, b: str) -> list[str]:
    """Best common ancestors on a plain ``{commit: [parents]}`` dict."""
    nodes: dict[str, Node] = {}
    result = run_sync(merge_base_steps(a, b, nodes), nodes, _dict_lookup(parents))
    assert isinstance(result, list)
    return result


def is_ancestor(parents: Mapping[str, Sequence[str]], ancestor: str, descendant: str) -> bool:
    nodes: dict[str, Node] = {}
    return bool(run_sync(is_ancestor_steps(ancestor, descendant, nodes), nodes, _dict_lookup(parents)))
