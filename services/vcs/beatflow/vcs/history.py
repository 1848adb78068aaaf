"""History queries on the database: log (keyset pages), commit graph, ancestry, merge bases, blame.

Strategy (measured in bench/vcs.py): commits carry a generation number, and
walks are recursive CTEs bounded by generation, so a page of history touches
only the commits it needs, however deep the history. Merge bases and ancestry
are answered from the process's in-memory graph index (:class:`GraphIndex`),
filled from the database as queries reach new commits. Full-DAG order is (generation, timestamp, id) descending: a
topological order (children before parents) that is also a total order, so
it can be the keyset of the page token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import InvalidArgument, NotFound
from beatflow.vcs.commits import commits_in_repo, list_refs, load_commits, resolve
from beatflow.vcs.graph import GraphIndex, Node
from beatflow.vcs.model import BlameEntry, Commit, Ref, Repository
from beatflow.vcs.names import is_commit_id
from beatflow.vcs.tokens import decode_token, encode_token

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_FRONTIER = 64

_FIRST_PARENT = """
WITH RECURSIVE chain(id, n) AS (
    SELECT CAST(:start AS varchar) COLLATE "C", 1
  UNION ALL
    SELECT CAST(c.parent_ids[1] AS varchar) COLLATE "C", chain.n + 1 FROM chain JOIN commits c ON c.id = chain.id
    WHERE cardinality(c.parent_ids) > 0 AND chain.n <= :limit
)
SELECT id FROM chain ORDER BY n
"""

_DAG_WALK = """
WITH RECURSIVE walk(id) AS (
    SELECT CAST(s.id AS varchar) COLLATE "C" FROM commits s JOIN repo_commits rc ON rc.commit_seq = s.seq
    WHERE rc.repo_seq = (SELECT seq FROM repositories WHERE id = :repo) AND s.id = ANY(CAST(:seeds AS varchar[]))
  UNION
    SELECT CAST(p.pid AS varchar) COLLATE "C" FROM walk w JOIN commits c ON c.id = w.id AND c.generation > :floor
    CROSS JOIN LATERAL unnest(c.parent_ids) AS p(pid)
)
SELECT c.id, c.generation, c.timestamp, c.parent_ids FROM walk JOIN commits c ON c.id = walk.id
WHERE c.generation >= :floor {after}
ORDER BY c.generation DESC, c.timestamp DESC, c.id DESC LIMIT :n
"""

_PREFETCH = """
WITH RECURSIVE seed AS (SELECT id, generation, parent_ids FROM commits WHERE id = ANY(:ids)),
walk(id, generation, parent_ids) AS (
    SELECT id, generation, parent_ids FROM seed
  UNION
    SELECT c.id, c.generation, c.parent_ids FROM walk w
    CROSS JOIN LATERAL unnest(w.parent_ids) AS p(pid)
    JOIN commits c ON c.id = p.pid
    WHERE w.generation > (SELECT max(generation) FROM seed) - :window
)
SELECT id, generation, parent_ids FROM walk
"""

_BLAME = """
WITH RECURSIVE walk(commit_id, name, blob_key, depth) AS (
    SELECT s.commit_id, s.name, s.blob_key, 0 FROM commit_stems s WHERE s.commit_id = :head
  UNION ALL
    SELECT nxt.commit_id, w.name, w.blob_key, w.depth + 1
    FROM walk w JOIN commits c ON c.id = w.commit_id
    CROSS JOIN LATERAL (
        SELECT ps.commit_id FROM unnest(c.parent_ids) WITH ORDINALITY AS u(pid, ord)
        JOIN commit_stems ps ON ps.commit_id = u.pid AND ps.name = w.name AND ps.blob_key = w.blob_key
        ORDER BY u.ord LIMIT 1
    ) nxt
)
SELECT DISTINCT ON (name) name, blob_key, commit_id FROM walk ORDER BY name, depth DESC
"""


def _page_size(size: int) -> int:
    return DEFAULT_PAGE if size <= 0 else min(size, MAX_PAGE)


async def log(
    conn: AsyncConnection, repo: Repository, ref: str, first_parent: bool, page_size: int, page_token: str
) -> tuple[list[Commit], str]:
    """One page of history from ``ref``.

    The token pins the starting head, so pages stay stable while the branch moves.
    """
    size = _page_size(page_size)
    cursor: dict[str, Any] = {}
    if page_token:
        tok = decode_token(page_token)
        head = str(tok.get("h", ""))
        # The first-parent cursor names the next commit to show: it must be of this repository too.
        pinned = [head, str(tok.get("n", head))] if first_parent else [head]
        if (
            not all(is_commit_id(c) for c in pinned)
            or bool(tok.get("fp")) != first_parent
            or len(await commits_in_repo(conn, repo.id, pinned)) != len(set(pinned))
        ):
            raise InvalidArgument("page token does not belong to this history")
        cursor = tok
    else:
        head = await resolve(conn, repo, ref)
    if first_parent:
        start = str(cursor.get("n", head))
        ids = list((await conn.execute(text(_FIRST_PARENT), {"start": start, "limit": size})).scalars())
        page, rest = ids[:size], ids[size:]
        token = encode_token({"h": head, "fp": True, "n": rest[0]}) if rest else ""
    else:
        rows = await _dag_page(conn, repo.id, head, cursor, size + 1)
        page = [r.id for r in rows[:size]]
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            nxt: dict[str, object] = {"h": head, "fp": False, "g": last.generation, "t": last.timestamp, "i": last.id}
            # The frontier (parents of what was shown, not shown yet) lets the next page walk from
            # there instead of from the head: every later commit is an ancestor of it.
            emitted = set(page)
            frontier = {str(f) for f in cursor.get("f", ())} | {p for r in rows[:size] for p in r.parent_ids}
            frontier -= emitted
            if len(frontier) <= MAX_FRONTIER:
                nxt["f"] = sorted(frontier)
            token = encode_token(nxt)
    commits = await load_commits(conn, page, repo.id)
    return [commits[c] for c in page], token


async def _dag_page(conn: AsyncConnection, repo_id: str, head: str, cursor: Mapping[str, Any], n: int) -> list[Any]:
    """Ancestors of ``head`` after the cursor, walking only generations above a floor that widens as needed.

    The walk starts from the cursor's frontier when the token carries one (only commits of this
    repository are taken as seeds), else from the head.
    """
    top_gen = (await conn.execute(text("SELECT generation FROM commits WHERE id = :h"), {"h": head})).scalar_one()
    params: dict[str, Any] = {"repo": repo_id, "seeds": [head], "n": n}
    after = ""
    if cursor:
        try:
            params.update(g=int(cursor["g"]), t=float(cursor["t"]), i=str(cursor["i"]))
            if "f" in cursor:
                params["seeds"] = [str(f) for f in cursor["f"]][:MAX_FRONTIER]
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument("malformed page token") from None
        after = "AND (c.generation, c.timestamp, c.id) < (:g, :t, :i)"
        top_gen = params["g"]
    window = 2 * n
    while True:
        params["floor"] = max(0, top_gen - window)
        rows = list((await conn.execute(text(_DAG_WALK.format(after=after)), params)).all())
        if len(rows) >= n or params["floor"] == 0:
            return rows
        window *= 4


async def commit_graph(
    conn: AsyncConnection, repo: Repository, limit: int
) -> tuple[list[Commit], list[tuple[str, str]], list[Ref]]:
    """The newest ``limit`` commits of the repository (by generation) with their parent edges and the refs."""
    n = 200 if limit <= 0 else min(limit, 5000)
    ids = list(
        (
            await conn.execute(
                text(
                    "SELECT c.id FROM repo_commits rc JOIN commits c ON c.seq = rc.commit_seq "
                    "WHERE rc.repo_seq = (SELECT seq FROM repositories WHERE id = :r) "
                    "ORDER BY c.generation DESC, c.timestamp DESC, c.id DESC LIMIT :n"
                ),
                {"r": repo.id, "n": n},
            )
        ).scalars()
    )
    commits = await load_commits(conn, ids, repo.id)
    nodes = [commits[c] for c in ids]
    edges = [(c.id, p) for c in nodes for p in c.parent_ids]
    return nodes, edges, await list_refs(conn, repo.id)


# Commits are immutable and content-addressed (same id, same parents, in every database), so one
# index per process stays valid; it is filled from the database as queries reach new commits.
_INDEX = GraphIndex()
MAX_INDEXED = 5_000_000  # nodes kept before the index starts over (about 1 GiB)


def graph_index() -> GraphIndex:
    return _INDEX


async def ensure_indexed(conn: AsyncConnection, ids: Iterable[str], window: int = 8, max_window: int = 16384) -> None:
    """Load into the process's graph index ``ids`` and every ancestor it does not hold yet.

    Each round trip walks a generation window below what is still missing (starting small, so a
    few new commits on top of a known graph cost one short query; growing fourfold, so a cold
    100k-commit history costs about a dozen). NOT_FOUND names an id the database lacks.
    """
    global _INDEX
    if len(_INDEX) > MAX_INDEXED:
        _INDEX = GraphIndex()
    index = _INDEX
    missing = {i for i in ids if i not in index}
    pending: dict[str, Node] = {}
    while missing:
        rows = await conn.execute(text(_PREFETCH), {"ids": sorted(missing), "window": window})
        pending.update((r.id, (r.generation, tuple(r.parent_ids))) for r in rows if r.id not in index)
        if lost := missing - pending.keys():
            raise NotFound(f"commit not found: {sorted(lost)[0]}")
        missing = {p for _, ps in pending.values() for p in ps if p not in index and p not in pending}
        window = min(window * 4, max_window)
    index.add(pending)


async def merge_bases(conn: AsyncConnection, a: str, b: str) -> list[str]:
    """All best common ancestors (``git merge-base --all``), from the process's graph index."""
    await ensure_indexed(conn, (a, b))
    return _INDEX.merge_bases(a, b)


async def is_ancestor(conn: AsyncConnection, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is reachable from ``descendant`` (a commit is its own ancestor)."""
    await ensure_indexed(conn, (ancestor, descendant))
    return _INDEX.is_ancestor(ancestor, descendant)


async def blame(conn: AsyncConnection, repo: Repository, ref: str) -> list[BlameEntry]:
    """For each stem at ``ref``, the commit that introduced its current audio.

    The walk follows, per stem, the first parent holding the same blob.
    """
    head = await resolve(conn, repo, ref)
    rows = (await conn.execute(text(_BLAME), {"head": head})).all()
    commits = await load_commits(conn, [r.commit_id for r in rows], repo.id)
    return [BlameEntry(r.name, r.blob_key, commits[r.commit_id]) for r in rows]
