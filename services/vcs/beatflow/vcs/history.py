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
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from beatflow.common.errors import InvalidArgument, NotFound
from beatflow.vcs import db
from beatflow.vcs.commits import COMMIT_ROW, commit_from_row, list_refs, load_commits, resolve
from beatflow.vcs.graph import GraphIndex, Node
from beatflow.vcs.model import BlameEntry, Commit, Ref, Repository
from beatflow.vcs.names import is_commit_id
from beatflow.vcs.page_tokens import decode_token, encode_token
from beatflow.vcs.repo_access import READABLE

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_FRONTIER = 64

# A log page is one statement: the head (from the token, else the ref: branch before tag), the
# walk and the commit rows with their stems. The page token's commits must be of this repository.
_HEAD = (
    "CAST(COALESCE(CAST(:start AS varchar), (SELECT commit_id FROM refs WHERE repo_id = :repo AND name ="
    " COALESCE(CAST(:name AS varchar), (SELECT default_branch FROM repositories WHERE id = :repo))"
    " ORDER BY CASE kind WHEN 'branch' THEN 0 ELSE 1 END LIMIT 1)) AS varchar) COLLATE \"C\""
)
# For a page read without reading the repository first (``quick_log``): nothing unless :actor may read it.
_READABLE_GUARD = f"AND EXISTS (SELECT 1 FROM repositories r WHERE r.id = :repo AND {READABLE})"

_FP_PAGE_SQL = f"""
WITH RECURSIVE chain(id, n) AS (
    SELECT {_HEAD}, 1
    WHERE (SELECT count(*) FROM commits m JOIN repo_commits rc ON rc.commit_seq = m.seq
           WHERE rc.repo_seq = (SELECT seq FROM repositories WHERE id = :repo)
             AND m.id = ANY(CAST(:pinned AS varchar[]))) = cardinality(CAST(:pinned AS varchar[]))
      {{guard}}
  UNION ALL
    SELECT CAST(c.parent_ids[1] AS varchar) COLLATE "C", chain.n + 1 FROM chain
    -- A primary-key probe per step (on a small or freshly analysed table the planner otherwise
    -- hash-joins a scan of every commit at each step: 17 ms for a page of 50 at 300 commits).
    CROSS JOIN LATERAL (SELECT c.parent_ids FROM commits c WHERE c.id = chain.id LIMIT 1) c
    WHERE cardinality(c.parent_ids) > 0 AND chain.n <= :limit
)
SELECT {COMMIT_ROW}
FROM chain CROSS JOIN LATERAL (SELECT * FROM commits c0 WHERE c0.id = chain.id LIMIT 1) c
JOIN users u ON u.id = c.author_id
ORDER BY chain.n
"""

_FP_PAGE = _FP_PAGE_SQL.format(guard="")

_DAG_PAGE = f"""
WITH RECURSIVE head AS (SELECT {_HEAD} AS id),
bounds AS (
    SELECT GREATEST(0, COALESCE(CAST(:g AS integer), (SELECT generation FROM commits WHERE id = (SELECT id FROM head)))
                       - {{window}}) AS floor
),
walk(id) AS (
    SELECT CAST(s.id AS varchar) COLLATE "C" FROM commits s
    CROSS JOIN LATERAL (  -- membership: a primary-key probe per seed
        SELECT 1 FROM repo_commits rc
        WHERE rc.repo_seq = (SELECT seq FROM repositories WHERE id = :repo) AND rc.commit_seq = s.seq LIMIT 1
    ) m
    WHERE s.id = ANY(COALESCE(CAST(:seeds AS varchar[]), ARRAY[(SELECT id FROM head)])) {{guard}}
  UNION
    SELECT CAST(p.pid AS varchar) COLLATE "C" FROM walk w
    -- A probe of the primary key per walked commit (LIMIT keeps the planner from turning the step
    -- into a hash join over every commit above the floor).
    CROSS JOIN LATERAL (
        SELECT c.parent_ids FROM commits c WHERE c.id = w.id AND c.generation > (SELECT floor FROM bounds) LIMIT 1
    ) c
    CROSS JOIN LATERAL unnest(c.parent_ids) AS p(pid)
)
SELECT {COMMIT_ROW}, (SELECT id FROM head) AS head_id, (SELECT floor FROM bounds) AS floor
FROM walk CROSS JOIN LATERAL (SELECT * FROM commits c0 WHERE c0.id = walk.id LIMIT 1) c
JOIN users u ON u.id = c.author_id
WHERE c.generation >= (SELECT floor FROM bounds) {{after}}
ORDER BY c.generation DESC, c.timestamp DESC, c.id DESC LIMIT {{n}}
"""
# The row count and the window are written into the statement (a few texts: page sizes are few,
# the window grows by 4x), not parameters: with LIMIT and the floor as parameters the planner's
# generic plan estimates too high, so PostgreSQL planned every page afresh (custom plans, 0.5-0.8 ms
# of a 2 ms statement); with them written in, a first page keeps the generic plan after five (a
# later page, with its cursor, is still planned each time).

_PREFETCH = """
WITH RECURSIVE seed AS (SELECT id, generation, parent_ids FROM commits WHERE id = ANY(:ids)),
walk(id, generation, parent_ids) AS (
    SELECT id, generation, parent_ids FROM seed
  UNION
    SELECT c.id, c.generation, c.parent_ids FROM walk w
    CROSS JOIN LATERAL unnest(w.parent_ids) AS p(pid)
    CROSS JOIN LATERAL (SELECT id, generation, parent_ids FROM commits WHERE id = p.pid LIMIT 1) c
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
    """One page of history from ``ref``, in one statement (a ref naming a commit id costs one more).

    The token pins the starting head, so pages stay stable while the branch moves.
    """
    page = await _log(conn, repo.id, ref or repo.default_branch, first_parent, page_size, page_token, repo=repo)
    assert page is not None
    return page


def _asked(repo: Repository, name: str | None) -> str:
    """The ref as :func:`resolve` takes it: '' for the default branch (its error says it has no commits yet)."""
    return "" if not name or name == repo.default_branch else name


async def quick_log(
    conn: db.Conn, repo_id: str, actor: str, ref: str, first_parent: bool, page_size: int, page_token: str
) -> tuple[list[Commit], str] | None:
    """:func:`log` in one statement that also checks ``actor`` may read the repository and finds its
    default branch, so the repository is not read first. None when that statement finds nothing (no
    access, no such repository or ref, a ref naming a commit id, a token of another history, a
    malformed token): the caller takes the full path, which answers those in the usual order."""
    try:
        return await _log(conn, repo_id, ref or None, first_parent, page_size, page_token, actor=actor)
    except InvalidArgument:
        return None


async def _log(
    conn: db.Conn,
    repo_id: str,
    name: str | None,
    first_parent: bool,
    page_size: int,
    page_token: str,
    *,
    repo: Repository | None = None,
    actor: str | None = None,
) -> tuple[list[Commit], str] | None:
    """A page (see :func:`log`); with ``actor`` (no ``repo``), None where :func:`log` would read more or refuse.

    ``conn`` is a SQLAlchemy connection when ``repo`` is given (:func:`log`), the only case that
    resolves a name with more statements; :func:`quick_log` may run on a pooled asyncpg one."""
    size = _page_size(page_size)
    cursor: dict[str, Any] = {}
    head = ""
    if page_token:
        cursor = decode_token(page_token)
        head = str(cursor.get("h", ""))
        if not is_commit_id(head) or bool(cursor.get("fp")) != first_parent:
            raise InvalidArgument("page token does not belong to this history")
    if first_parent:
        rows = await _fp_page(conn, repo_id, name, head, cursor, size, actor)
        if not rows and not page_token:  # not a branch or tag: a commit id, or NOT_FOUND
            if repo is None:
                return None
            head = await resolve(cast(AsyncConnection, conn), repo, _asked(repo, name))
            rows = await _fp_page(conn, repo_id, name, head, cursor, size, actor)
        page, rest = rows[:size], rows[size:]
        head = head or page[0].id
        token = encode_token({"h": head, "fp": True, "n": rest[0].id}) if rest else ""
    else:
        rows = await _dag_page(conn, repo_id, name, head, cursor, size + 1, actor)
        if not rows and not page_token:
            if repo is None:
                return None
            head = await resolve(cast(AsyncConnection, conn), repo, _asked(repo, name))
            rows = await _dag_page(conn, repo_id, name, head, cursor, size + 1, actor)
        if rows:
            head = head or rows[0].head_id
        page = rows[:size]
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            nxt: dict[str, object] = {"h": head, "fp": False, "g": last.generation, "t": last.timestamp, "i": last.id}
            # The frontier (parents of what was shown, not shown yet) lets the next page walk from
            # there instead of from the head: every later commit is an ancestor of it.
            emitted = {r.id for r in page}
            frontier = {str(f) for f in cursor.get("f", ())} | {p for r in page for p in r.parent_ids}
            frontier -= emitted
            if len(frontier) <= MAX_FRONTIER:
                nxt["f"] = sorted(frontier)
            token = encode_token(nxt)
    if page_token and not page:
        if repo is None:
            return None
        if first_parent or "f" not in cursor:
            # A token is only issued when a next page exists: its head (or first-parent cursor) is not of
            # this repository. (A forged frontier is only ever filtered to this repository's commits.)
            raise InvalidArgument("page token does not belong to this history")
    return [commit_from_row(r, repo_id) for r in page], token


async def _fp_page(
    conn: db.Conn,
    repo_id: str,
    name: str | None,
    head: str,
    cursor: Mapping[str, Any],
    size: int,
    actor: str | None = None,
) -> list[Any]:
    start = str(cursor.get("n", head)) if cursor else (head or None)
    pinned = sorted({head, str(start)}) if cursor else []
    if cursor and not is_commit_id(str(start)):
        raise InvalidArgument("page token does not belong to this history")
    params = {"start": start, "repo": repo_id, "name": name, "pinned": pinned, "limit": size, "actor": actor}
    sql = _FP_PAGE if actor is None else _FP_PAGE_SQL.format(guard=_READABLE_GUARD)
    return await db.fetch(conn, sql, params)


async def _dag_page(
    conn: db.Conn,
    repo_id: str,
    name: str | None,
    head: str,
    cursor: Mapping[str, Any],
    n: int,
    actor: str | None = None,
) -> list[Any]:
    """Ancestors of the head after the cursor, walking only generations above a floor that widens as needed.

    The walk starts from the cursor's frontier when the token carries one (only commits of this
    repository are taken as seeds), else from the head.
    """
    params: dict[str, Any] = {
        "start": head or None,
        "repo": repo_id,
        "name": name,
        "g": None,
        "seeds": None,
        "actor": actor,
    }
    after = ""
    if cursor:
        try:
            params.update(g=int(cursor["g"]), t=float(cursor["t"]), i=str(cursor["i"]))
            params["seeds"] = [str(f) for f in cursor["f"]][:MAX_FRONTIER] if "f" in cursor else [head]
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument("malformed page token") from None
        after = "AND (c.generation, c.timestamp, c.id) < (:g, :t, :i)"
    guard = "" if actor is None else _READABLE_GUARD
    # Every generation from the head's down to 0 holds an ancestor of the head (a commit's parent of
    # highest generation is one below it), so a first page's window of n generations finds its n
    # rows at once; any window gives the same rows (all that is not walked lies below the floor).
    window = n
    while True:
        rows = await db.fetch(conn, _DAG_PAGE.format(after=after, guard=guard, n=int(n), window=int(window)), params)
        if len(rows) >= n or not rows or rows[0].floor == 0:
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
        rows = await conn.execute(db.sql(_PREFETCH), {"ids": sorted(missing), "window": window})
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
