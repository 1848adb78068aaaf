"""History pages: one statement per page, and plans that use the indexes (EXPLAIN)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from beatflow.vcs import db, history
from beatflow.vcs.commits import build_commit, store_commit
from beatflow.vcs.model import Metadata
from beatflow.vcs.page_tokens import decode_token
from beatflow.vcs.repo_access import load_repo


async def _history(world) -> None:
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    for i in range(12):
        await world.commit(f"m{i}", drums=f"d{i}")
    await vcs.create_branch(a, r, "side", "main")
    for i in range(4):
        await world.commit(f"s{i}", branch="side", vox=f"v{i}")
    await world.commit("m12", drums="d12")
    merged = await vcs.merge(a, r, into_branch="main", from_ref="side")
    assert merged.merged and not merged.fast_forward
    for i in range(3):
        await world.commit(f"a{i}", drums=f"x{i}")


async def test_each_log_page_is_one_statement(world, monkeypatch) -> None:
    await _history(world)
    engine = world.vcs.engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    direct = db.fetch

    async def fetch(conn: Any, statement: str, params: Any) -> Any:  # statements run on asyncpg directly
        statements.append(statement)
        return await direct(conn, statement, params)

    monkeypatch.setattr(db, "fetch", fetch)
    async with engine.connect() as conn:
        repo = await load_repo(conn, world.repo.id, world.alice.id)
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            for first_parent in (True, False):
                seen: list[str] = []
                token = ""
                pages = 0
                while True:
                    statements.clear()
                    page, token = await history.log(conn, repo, "", first_parent, 5, token)
                    assert len(statements) == 1, statements
                    seen += [c.message for c in page]
                    pages += 1
                    if not token:
                        break
                assert pages >= 3
                assert seen[:3] == ["a2", "a1", "a0"] and seen[-1] == "m0"
                assert len(seen) == (17 if first_parent else 21) == len(set(seen))
            statements.clear()
            page, _ = await history.log(conn, repo, "side", False, 3, "")  # a branch other than the default
            assert [c.message for c in page] == ["s3", "s2", "s1"] and len(statements) == 1
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)


def _plan(rows: list[Any]) -> str:
    return "\n".join(str(r[0]) for r in rows)


async def _long_history(world, helpers, n: int) -> str:
    """n commits on main (stored directly, one transaction), ANALYZEd; the head's id."""
    head = ""
    async with world.vcs.engine.begin() as conn:
        for i in range(n):
            c = build_commit(
                parents=[head] if head else [],
                parent_generations=[i] if head else [],
                stems=[helpers.stem("drums", f"d{i}")],
                mixdown_blob="",
                metadata=Metadata(),
                author_id=world.alice.id,
                author_username="alice",
                message=f"c{i}",
                repo_id=world.repo.id,
                timestamp=1000.0 + i,
            )
            await store_commit(conn, world.repo.id, c)
            head = c.id
        await conn.execute(
            text("INSERT INTO refs (repo_id, kind, name, commit_id) VALUES (:r, 'branch', 'main', :c)"),
            {"r": world.repo.id, "c": head},
        )
        await conn.execute(text("ANALYZE"))
    return head


async def test_log_page_plans_use_the_indexes(world, helpers) -> None:
    """On a few thousand commits, the planner's own choice (nothing forced) probes the indexes.

    A walk step that hash-joins every commit above the floor, or a dropped index on commits,
    repo_commits or commit_stems, shows here as a ``Seq Scan`` on that table.
    """
    await _long_history(world, helpers, 2000)
    async with world.vcs.engine.connect() as conn:
        repo = await load_repo(conn, world.repo.id, world.alice.id)
        _, token = await history.log(conn, repo, "", False, 50, "")
        cursor = decode_token(token)
        _, fp_token = await history.log(conn, repo, "", True, 50, "")
        fp_cursor = decode_token(fp_token)
        base = {"start": None, "repo": repo.id, "name": "main"}
        dag = {"g": None, "seeds": None}
        after = "AND (c.generation, c.timestamp, c.id) < (:g, :t, :i)"
        later = {"start": cursor["h"], "g": cursor["g"], "t": cursor["t"], "i": cursor["i"], "seeds": cursor["f"]}
        plans = {
            "first-parent first page": (history._FP_PAGE, {**base, "pinned": [], "limit": 50}),
            "first-parent later page": (
                history._FP_PAGE,
                {**base, "start": fp_cursor["n"], "pinned": sorted({fp_cursor["h"], fp_cursor["n"]}), "limit": 50},
            ),
            "DAG first page": (history._DAG_PAGE.format(after="", guard="", n=51, window=51), {**base, **dag}),
            "DAG later page": (
                history._DAG_PAGE.format(after=after, guard="", n=51, window=51),
                {**base, **dag, **later},
            ),
            # The quick pages: the same walks behind the reader check, the default branch found in SQL.
            "first-parent first page, access checked": (
                history._FP_PAGE_SQL.format(guard=history._READABLE_GUARD),
                {**base, "name": None, "actor": world.alice.id, "pinned": [], "limit": 50},
            ),
            "DAG first page, access checked": (
                history._DAG_PAGE.format(after="", guard=history._READABLE_GUARD, n=51, window=51),
                {**base, **dag, "name": None, "actor": world.alice.id},
            ),
        }
        for label, (sql, params) in plans.items():
            plan = _plan(list(await conn.execute(text("EXPLAIN " + sql), params)))
            for table in ("commits", "repo_commits", "commit_stems"):
                assert f"Seq Scan on {table} " not in plan, (label, plan)
            assert "commits_pkey" in plan, (label, plan)

        # A DAG first page keeps PostgreSQL's generic plan (its size and window are written into the
        # statement), and that plan probes the indexes too.
        for _ in range(7):
            assert await history.quick_log(conn, repo.id, world.alice.id, "", False, 50, "")
        sql, names = db.positional(plans["DAG first page, access checked"][0])
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        kept = await raw.fetchval("SELECT generic_plans FROM pg_prepared_statements WHERE statement = $1", sql)
        assert kept and kept >= 1, kept
        params = plans["DAG first page, access checked"][1]
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE dag_page AS {sql}")
        try:
            values = [params[n] for n in names]
            assert all(v is None or isinstance(v, str) for v in values), values  # written as literals below
            literals = ", ".join("NULL" if v is None else "'" + v.replace("'", "''") + "'" for v in values)
            plan = _plan(await raw.fetch(f"EXPLAIN EXECUTE dag_page({literals})"))
        finally:
            await raw.execute("DEALLOCATE dag_page; RESET plan_cache_mode")
        for table in ("commits", "repo_commits", "commit_stems"):
            assert f"Seq Scan on {table} " not in plan, plan
        assert "commits_pkey" in plan, plan


async def test_commit_write_checks_blobs_by_probes(world, helpers) -> None:
    """The commit's blob checks are probes per key: on a few hundred commits (where the planner had
    chosen otherwise) no check is a hashed subplan that reads every blob or stem the actor can
    reach, which made a commit's cost grow with the database; and a new blob skips the readability
    checks (they come after the "known" ones)."""
    from beatflow.vcs import commits

    head = await _long_history(world, helpers, 300)
    async with world.vcs.engine.begin() as conn:  # every stem's blob registered, as commits do
        await conn.execute(
            text(
                "INSERT INTO blobs (key, content_type, size_bytes) SELECT blob_key, 'audio/wav', 1000 FROM commit_stems"
            )
        )
        await conn.execute(text("ANALYZE"))
    params = {
        **commits._commit_params(
            build_commit(
                parents=[head],
                parent_generations=[300],
                stems=[helpers.stem("drums", "fresh")],
                mixdown_blob="",
                metadata=Metadata(),
                author_id=world.alice.id,
                author_username="alice",
                message="x",
                repo_id=world.repo.id,
            )
        ),
        "repo": world.repo.id,
        "actor": world.alice.id,
        "expected": head,
        "btypes": ["audio/wav"],
        "bsizes": [1000],
    }
    async with world.vcs.engine.connect() as conn:
        for checks_access, branch in ((False, "main"), (True, None)):
            for key in (helpers.blob("fresh"), helpers.blob("d7")):  # new; known (a stem of this history)
                sql = commits._write_sql(True, checks_access).text
                plan = _plan(
                    list(await conn.execute(text("EXPLAIN " + sql), {**params, "bkeys": [key], "branch": branch}))
                )
                assert "hashed" not in plan, plan
            analyzed = _plan(
                list(
                    await conn.execute(
                        text("EXPLAIN (ANALYZE, COSTS OFF) " + blobs_denied()),
                        {"bkeys": [helpers.blob("fresh")], "actor": world.alice.id},
                    )
                )
            )
            # A new blob: only the "known" probes run; the readability ones never do.
            assert analyzed.count("never executed") >= 4, analyzed


def blobs_denied() -> str:
    from beatflow.vcs import blobs

    return blobs.DENIED_BLOB


async def test_a_page_is_one_statement_without_reading_the_repository(world, monkeypatch) -> None:
    """The service's log reads access, default branch and page in one statement; whoever may not
    read the repository gets NOT_FOUND (the full path), and a commit-id ref still works."""
    from beatflow.common.errors import NotFound
    from beatflow.vcs.model import Visibility

    await _history(world)
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    statements: list[str] = []
    direct = db.fetch

    async def fetch(conn: Any, statement: str, params: Any) -> Any:
        statements.append(statement)
        return await direct(conn, statement, params)

    monkeypatch.setattr(db, "fetch", fetch)
    for first_parent in (True, False):
        statements.clear()
        page, token = await vcs.log(a, r, first_parent=first_parent, page_size=5)
        assert [c.message for c in page][:3] == ["a2", "a1", "a0"] and token
        assert len(statements) == 1 and "rc_co" in statements[0]  # the reader check is in the page
        statements.clear()
        nxt, _ = await vcs.log(a, r, first_parent=first_parent, page_size=5, page_token=token)
        assert len(statements) == 1 and nxt and not {c.id for c in nxt} & {c.id for c in page}
        with pytest.raises(NotFound):  # bob cannot see alice's private repository
            await vcs.log(world.bob.id, r, first_parent=first_parent, page_size=5)
        with pytest.raises(NotFound):
            await vcs.log(world.bob.id, r, first_parent=first_parent, page_size=5, page_token=token)
    head = page[0].id
    by_id, _ = await vcs.log(a, r, head, first_parent=True, page_size=2)  # a commit id: the full path
    assert by_id[0].id == head
    await vcs.update_repository(a, r, visibility=Visibility.PUBLIC)
    statements.clear()
    seen, _ = await vcs.log(world.bob.id, r, first_parent=True, page_size=5)
    assert [c.message for c in seen][:3] == ["a2", "a1", "a0"] and len(statements) == 1


async def test_ancestry_names_resolve_with_the_reader_check(world, monkeypatch) -> None:
    """merge-base / is-ancestor resolve names and check the reader in one statement ('' = the
    default branch); a stranger or an unknown name gets the full path's NOT_FOUND."""
    from beatflow.common.errors import NotFound

    await _history(world)
    vcs, a, r = world.vcs, world.alice.id, world.repo.id
    statements: list[str] = []
    direct = db.fetch

    async def fetch(conn: Any, statement: str, params: Any) -> Any:
        statements.append(statement)
        return await direct(conn, statement, params)

    monkeypatch.setattr(db, "fetch", fetch)
    side = {x.name: x.commit_id for x in await vcs.list_refs(a, r)}["side"]
    statements.clear()
    assert await vcs.merge_base(a, r, "", "side") == [side]  # side was merged into main
    assert await vcs.is_ancestor(a, r, "side", "")
    assert not await vcs.is_ancestor(a, r, "", "side")
    assert len(statements) == 3 and all("rc_co" in s for s in statements)  # no separate repository read
    for call in (vcs.merge_base(world.bob.id, r, "", "side"), vcs.merge_base(a, r, "", "nope")):
        with pytest.raises(NotFound):
            await call
