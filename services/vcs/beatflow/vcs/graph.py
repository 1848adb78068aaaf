"""Commit-graph algorithms over plain lookups: merge bases and ancestry.

The algorithms are written once, as generators that *yield* the commit ids
whose ``(generation, parents)`` they need and are not yet in the shared
``nodes`` dict. :func:`run_sync` fills ``nodes`` from a mapping or function and
resumes them (the reference on dicts, tested against git); the service answers
from :class:`GraphIndex`, checked against the same graphs.

Generation numbers (root = 1, else 1 + max over parents) give a traversal
order in which every descendant is seen before its ancestors, so the
"paint down to common" walk (as in git) finds exactly the best common
ancestors and can stop as soon as every queued commit is known to lie below
a result.

:class:`GraphIndex` runs the same walks on an in-memory index of the graph,
with first-parent jump pointers and single-parent runs so that their cost is
the merges between the commits rather than the commits: what the service
answers from (:mod:`beatflow.vcs.history` fills it from the database).
"""

from __future__ import annotations

import heapq
import random
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, MutableMapping, Sequence

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


class GraphIndex:
    """An in-memory index of an immutable commit graph: integer nodes, generations, first-parent jumps.

    Commits never change once written (their id is the hash of their content), so what is
    loaded stays true for as long as the process runs; a process keeps one index and adds
    commits as queries reach them (:mod:`beatflow.vcs.history`). Each node also carries its
    first-parent depth and one skew-binary jump pointer along the first-parent chain, so
    "is ``a`` on ``d``'s first-parent line" costs O(log distance) pointer hops, however
    deep the history. The walks themselves are the algorithms above, on integers.
    Two reachability labelings (post-order numbers of depth-first walks, as in GRAIL) answer
    most "is not an ancestor" questions outright and prune the ancestry walks.
    """

    def __init__(self) -> None:
        self.pos: dict[str, int] = {}
        self.ids: list[str] = []
        self.gen: list[int] = []
        self.par: list[tuple[int, ...]] = []
        self.fpd: list[int] = []  # first-parent depth (a root is 0)
        self.jmp: list[int] = []  # skew-binary jump pointer along first parents
        self.bot: list[int] = []  # end of the single-parent run: the first node down with 0 or 2+ parents
        # Two reachability labelings (GRAIL): a post-order number of a depth-first walk over parents
        # (``post``) and the lowest such number among a node's ancestors (``low``). A node reaches
        # only nodes whose labels nest inside its own, so a mismatch is an exact "no".
        self.labels = tuple((array("q"), array("q")) for _ in range(2))
        self.next_post = 0
        self.kid = array("q")  # a child (-1: none yet); a node's further children are in ``kids``
        self.kids: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, cid: object) -> bool:
        return cid in self.pos

    def add(self, nodes: Mapping[str, Node]) -> None:
        """Add commits whose parents are known or among ``nodes`` (any order; unknown parents raise KeyError)."""
        todo = sorted((n for n in nodes.items() if n[0] not in self.pos), key=lambda n: n[1][0])
        for cid, (gen, parents) in todo:  # generation order: parents before children
            par = tuple(self.pos[p] for p in parents)
            i = len(self.ids)
            if par:
                p = par[0]
                j = self.jmp[p]
                depth = self.fpd[p] + 1
                jump = self.jmp[j] if self.fpd[p] - self.fpd[j] == self.fpd[j] - self.fpd[self.jmp[j]] else p
            else:
                depth, jump = 0, i
            self.pos[cid] = i
            self.ids.append(cid)
            self.gen.append(gen)
            self.par.append(par)
            self.fpd.append(depth)
            self.jmp.append(jump)
            self.bot.append(self.bot[par[0]] if len(par) == 1 else i)
            self.kid.append(-1)
            for p in par:
                if self.kid[p] < 0:
                    self.kid[p] = i
                else:
                    self.kids.setdefault(p, []).append(i)

    def _ensure_labels(self) -> None:
        """Label what was added since the last labeling (only ancestry asks for labels).

        New nodes at least as many as the rest relabel the whole graph (the labels of one walk
        over all of it discriminate best); fewer are labelled on their own, above the rest. Either
        way a node's cost stays constant, amortised."""
        n, done = len(self.ids), len(self.labels[0][0])
        if done < n:
            self._label(0 if 2 * (n - done) >= n else done)

    def _label(self, start: int) -> None:
        """Label nodes ``start`` and up (post-order walks; the nodes below keep their labels)."""
        par = self.par
        n = len(self.ids)
        base = 0 if start == 0 else self.next_post
        for k, (post, low) in enumerate(self.labels):
            del post[start:], low[start:]
            post.extend([-1] * (n - start))
            low.extend([0] * (n - start))
            counter = base
            roots = list(range(n - 1, start - 1, -1))  # newest first: a tip's walk numbers its history
            if k:  # the second labeling walks in another order, so what one cannot tell the other may
                random.Random(n).shuffle(roots)
            order = reversed if k else iter
            for r in roots:
                if post[r] >= 0:
                    continue
                post[r] = -2  # on the stack
                stack: list[tuple[int, Iterator[int]]] = [(r, order(par[r]))]
                while stack:
                    v, rest = stack[-1]
                    for p in rest:
                        if p >= start and post[p] == -1:
                            post[p] = -2
                            stack.append((p, order(par[p])))
                            break
                    else:
                        stack.pop()
                        post[v] = counter
                        m = counter
                        for p in par[v]:
                            if low[p] < m:
                                m = low[p]
                        low[v] = m
                        counter += 1
        self.next_post = base + n - start

    def _may_reach(self, d: int, a: int) -> bool:
        """False when ``d`` surely does not reach ``a`` (labels not nested); True: it may."""
        for post, low in self.labels:
            if post[a] > post[d] or low[a] < low[d]:
                return False
        return True

    def _at_depth(self, v: int, depth: int) -> int:
        """``v``'s first-parent ancestor at first-parent depth ``depth`` (<= its own): O(log) hops."""
        fpd, jmp, par = self.fpd, self.jmp, self.par
        while fpd[v] > depth:
            j = jmp[v]
            v = j if fpd[j] >= depth else par[v][0]
        return v

    def _on_first_parent_line(self, a: int, d: int) -> bool:
        return self.fpd[d] >= self.fpd[a] and self._at_depth(d, self.fpd[a]) == a

    def _meet(self, x: int, y: int) -> int:
        """Where the first-parent lines of ``x`` and ``y`` join (they must share a root)."""
        fpd, jmp, par = self.fpd, self.jmp, self.par
        if fpd[x] > fpd[y]:
            x = self._at_depth(x, fpd[y])
        else:
            y = self._at_depth(y, fpd[x])
        while x != y:  # equal depths have equal jump depths
            if jmp[x] != jmp[y]:
                x, y = jmp[x], jmp[y]
            else:
                x, y = par[x][0], par[y][0]
        return x

    def _skip_floor(self, c: int, others: Iterable[int], limit: int) -> int:
        """The highest generation at which a walk from any of ``others`` could reach ``c``'s run.

        ``c``'s run (single parents down to ``bot[c]``) loses one generation per step; two runs
        share a node only if they share their bottom, and then from where their lines meet.
        Stops early once the answer reaches ``limit`` (no skip possible).
        """
        gen, par, bot = self.gen, self.par, self.bot
        b = bot[c]
        high = 0
        for e in others:
            if len(par[e]) != 1:
                t = gen[e]
            elif bot[e] != b:
                t = gen[bot[e]] - 1
            else:
                t = gen[self._meet(c, e)]
            if t > high:
                high = t
                if high >= limit:
                    break
        return high

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        a, d = self.pos[ancestor], self.pos[descendant]
        if a == d:
            return True
        if self.gen[d] <= self.gen[a]:
            return False
        self._ensure_labels()
        if not self._may_reach(d, a):
            return False
        # Two searches in turn, one step each, until either answers: down from the descendant and
        # up from the ancestor. Each is pruned by generation and by the labels, so the cost is
        # twice the cheaper one: an old side commit merged long ago is found in a few steps up,
        # a tip with a long first-parent line in a few steps down.
        down, up = self._walk_down(a, d), self._walk_up(a, d)
        while True:
            for walk in (down, up):
                try:
                    next(walk)
                except StopIteration as stop:
                    return bool(stop.value)

    def _walk_down(self, a: int, d: int) -> Generator[None, None, bool]:
        """Depth-first from ``d`` over runs, pruned at ``a``'s generation: at each entry point, one
        O(log n) check covers its whole first-parent line; then the walk jumps to the end of the
        single-parent run and enters the parents there. Cost: the merges between the two.
        (A first parent continues a line already checked: only later parents start new ones.)"""
        gen, par, fpd, bot = self.gen, self.par, self.fpd, self.bot
        floor = gen[a]
        seen = {d}
        stack = [(d, True)]
        while stack:
            yield
            c, check = stack.pop()
            if check and fpd[c] >= fpd[a] and self._at_depth(c, fpd[a]) == a:
                return True
            b = bot[c]
            if gen[b] <= floor:
                continue
            for k, p in enumerate(par[b]):
                if p == a:
                    return True
                if p not in seen and gen[p] > floor:
                    seen.add(p)
                    if self._may_reach(p, a):
                        stack.append((p, k > 0))
        return False

    def _walk_up(self, a: int, d: int) -> Generator[None, None, bool]:
        """Depth-first from ``a`` over children below ``d``'s generation (and within its labels),
        until one lies on ``d``'s first-parent line (one O(log n) check each)."""
        gen, fpd, kid, kids = self.gen, self.fpd, self.kid, self.kids
        top = gen[d]
        seen = {a}
        stack = [a]
        while stack:
            yield
            c = stack.pop()
            if fpd[d] >= fpd[c] and self._at_depth(d, fpd[c]) == c:
                return True
            if kid[c] < 0:
                continue
            for k in (kid[c], *kids.get(c, ())):
                if k == d:
                    return True
                if k not in seen and gen[k] < top and self._may_reach(d, k):
                    seen.add(k)
                    stack.append(k)
        return False

    def merge_bases(self, a_id: str, b_id: str) -> list[str]:
        """All best common ancestors (git merge-base --all), highest generation first."""
        a, b = self.pos[a_id], self.pos[b_id]
        if a == b:
            return [a_id]
        gen, par = self.gen, self.par
        # Fast-forward shapes (one is an ancestor of the other) are the common case of a merge.
        if gen[a] < gen[b] and self._on_first_parent_line(a, b):
            return [a_id]
        if gen[b] < gen[a] and self._on_first_parent_line(b, a):
            return [b_id]
        flags: dict[int, int] = {a: _P1, b: _P2}
        heap: list[tuple[int, int]] = [(-gen[a], a), (-gen[b], b)]
        heapq.heapify(heap)
        results: list[int] = []
        push, pop = heapq.heappush, heapq.heappop
        fpd, bot = self.fpd, self.bot
        while any(not flags[c] & _STALE for _, c in heap):
            _, c = pop(heap)
            while heap and heap[0][1] == c:
                pop(heap)
            f = flags[c] & (_P1 | _P2 | _STALE)
            if f == _P1 | _P2:
                if not flags[c] & _RESULT:
                    results.append(c)
                f |= _STALE
                flags[c] |= _RESULT | _STALE
            ps = par[c]
            if len(ps) == 1 and gen[c] - gen[bot[c]] > 2:
                # Skip down the single-parent run to just above where another walk could reach it:
                # the nodes skipped would only ever carry these same flags.
                low = max(gen[bot[c]], self._skip_floor(c, (e for _, e in heap), gen[c] - 2) + 1)
                if low < gen[c] - 1:
                    ps = (self._at_depth(c, fpd[c] - (gen[c] - low)),)
            for p in ps:
                pf = flags.get(p, 0)
                if pf & f == f:
                    continue
                flags[p] = pf | f
                push(heap, (-gen[p], p))
        return [self.ids[r] for r in results]
