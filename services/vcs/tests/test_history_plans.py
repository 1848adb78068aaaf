"""History pages: one statement per page, and plans that use the indexes (EXPLAIN)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from beatflow.vcs import history
from beatflow.vcs.access import load_repo
from beatflow.vcs.tokens import decode_token


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


async def test_each_log_page_is_one_statement(world) -> None:
    await _history(world)
    engine = world.vcs.engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

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


async def test_log_page_plans_use_the_indexes(world) -> None:
    """With sequential scans priced out, a plan still shows one only where no index serves it.

    A dropped or changed index (commits.id, repo_commits, refs) therefore shows up here as a
    ``Seq Scan`` on that table, whatever the size of the test data.
    """
    await _history(world)
    async with world.vcs.engine.connect() as conn:
        repo = await load_repo(conn, world.repo.id, world.alice.id)
        _, token = await history.log(conn, repo, "", False, 5, "")
        cursor = decode_token(token)
        await conn.execute(text("ANALYZE"))
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        base = {"start": None, "repo": repo.id, "name": "main"}
        plans = {
            "first-parent first page": (history._FP_PAGE, {**base, "pinned": [], "limit": 50}),
            "DAG first page": (
                history._DAG_PAGE.format(after=""),
                {**base, "n": 51, "g": None, "seeds": None, "window": 102},
            ),
            "DAG later page": (
                history._DAG_PAGE.format(after="AND (c.generation, c.timestamp, c.id) < (:g, :t, :i)"),
                {
                    **base,
                    "start": cursor["h"],
                    "n": 51,
                    "g": cursor["g"],
                    "t": cursor["t"],
                    "i": cursor["i"],
                    "seeds": cursor["f"],
                    "window": 102,
                },
            ),
        }
        for label, (sql, params) in plans.items():
            plan = _plan(list(await conn.execute(text("EXPLAIN " + sql), params)))
            for table in ("commits", "repo_commits", "refs", "commit_stems", "users", "repositories"):
                assert f"Seq Scan on {table} " not in plan, (label, plan)
            assert "commits_pkey" in plan, (label, plan)
