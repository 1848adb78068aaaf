"""Many writers on one branch: compare-and-swap keeps every accepted commit and refuses the rest cleanly."""

from __future__ import annotations

import asyncio
import itertools
import random

from sqlalchemy import text

from beatflow.common.errors import FailedPrecondition


async def _head(world) -> str:
    return {r.name: r.commit_id for r in await world.vcs.list_refs(world.alice.id, world.repo.id)}["main"]


async def _attempt(world, helpers, label: str) -> tuple[str | None, str]:
    """Read the head, commit naming it; (commit id or None, head seen)."""
    head = await _head(world)
    try:
        c = await world.vcs.create_commit(
            world.alice.id,
            world.repo.id,
            expected_head=head,
            message=label,
            stems=[helpers.stem("drums", label)],
            inherit_stems=True,
        )
    except FailedPrecondition as err:
        assert "stale head" in err.message and head in err.message
        return None, head
    assert c.parent_ids == (head,)
    return c.id, head


async def _assert_linear(world, root: str, accepted: list[str]) -> None:
    log, token = await world.vcs.log(world.alice.id, world.repo.id, page_size=500)
    assert token == ""
    ids = [c.id for c in log]
    assert ids[-1] == root and len(ids) == len(accepted) + 1 and set(ids[:-1]) == set(accepted)
    for child, parent in itertools.pairwise(log):  # strictly linear: each commit's only parent is the next
        assert child.parent_ids == (parent.id,)
    async with world.vcs.engine.connect() as conn:
        n_commits = (await conn.execute(text("SELECT count(*) FROM commits"))).scalar_one()
        n_members = (await conn.execute(text("SELECT count(*) FROM repo_commits"))).scalar_one()
    assert n_commits == n_members == len(accepted) + 1  # refused attempts left nothing behind


async def test_fifty_concurrent_commits_make_a_linear_history(world, helpers) -> None:
    root = await world.commit("root", drums="d0")
    rng = random.Random(7)
    start = asyncio.Event()

    async def one_shot(i: int) -> tuple[str | None, str]:
        await start.wait()
        await asyncio.sleep(rng.random() * 0.05)  # spread the reads so several heads get seen
        return await _attempt(world, helpers, f"one-shot {i}")

    tasks = [asyncio.create_task(one_shot(i)) for i in range(50)]
    start.set()
    results = await asyncio.gather(*tasks)
    accepted = [cid for cid, _ in results if cid]
    refused = [head for cid, head in results if not cid]
    assert len(accepted) + len(refused) == 50
    assert accepted and refused
    assert len(set(accepted)) == len(accepted)
    # Every accepted commit names a distinct head: no two writers won on the same head.
    heads_won = [head for cid, head in results if cid]
    assert len(set(heads_won)) == len(heads_won)
    await _assert_linear(world, root.id, accepted)


async def test_writers_that_retry_all_get_in(world, helpers) -> None:
    root = await world.commit("root", drums="d0")

    async def persistent(i: int) -> str:
        for attempt in range(100):
            cid, _ = await _attempt(world, helpers, f"writer {i} try {attempt}")
            if cid:
                return cid
        raise AssertionError("never accepted")

    accepted = list(await asyncio.gather(*(persistent(i) for i in range(10))))
    await _assert_linear(world, root.id, accepted)


async def test_fifty_appends_onto_the_head_all_land_in_a_linear_history(world, helpers) -> None:
    """resolve_head: the atomic append; no writer is refused and none is lost."""
    root = await world.commit("root", drums="d0")
    start = asyncio.Event()

    async def append(i: int) -> str:
        await start.wait()
        c = await world.vcs.create_commit(
            world.alice.id,
            world.repo.id,
            resolve_head=True,
            message=f"append {i}",
            stems=[helpers.stem("drums", f"append {i}")],
            inherit_stems=True,
        )
        return c.id

    tasks = [asyncio.create_task(append(i)) for i in range(50)]
    start.set()
    accepted = list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=120))
    assert len(set(accepted)) == 50
    await _assert_linear(world, root.id, accepted)
    assert await _head(world) in accepted


async def test_racing_writers_take_turns_and_the_late_ones_are_refused_without_a_statement(
    world, helpers, monkeypatch
) -> None:
    """Eight strict commits onto one head at once, by one writer: one lands, seven are refused naming
    it, and at most two write statements ran (the winner's, and the first whose turn came after it;
    the rest were answered from what that one saw). A stranger racing with them still learns nothing:
    his call goes to the database and is NOT_FOUND, as when alone."""
    from beatflow.common.errors import NotFound
    from beatflow.vcs import commits

    root = await world.commit("root", drums="d0")
    writes: list[str] = []
    direct = commits._write

    async def counted(conn, repo_id, actor, *args, **kwargs):  # type: ignore[no-untyped-def]
        writes.append(actor)
        return await direct(conn, repo_id, actor, *args, **kwargs)

    monkeypatch.setattr(commits, "_write", counted)

    async def attempt(actor: str, label: str) -> str | BaseException:
        try:
            c = await world.vcs.create_commit(
                actor,
                world.repo.id,
                expected_head=root.id,
                message=label,
                stems=[helpers.stem("drums", label)],
                inherit_stems=True,
            )
        except (FailedPrecondition, NotFound) as err:
            return err
        return c.id

    results = await asyncio.gather(
        *(attempt(world.alice.id, f"race {i}") for i in range(8)), attempt(world.bob.id, "stranger")
    )
    won = [r for r in results[:8] if isinstance(r, str)]
    assert len(won) == 1
    refusals = [r for r in results[:8] if isinstance(r, FailedPrecondition)]
    assert len(refusals) == 7
    for err in refusals:  # each names the head the winner left, as a stale refusal does
        assert err.details[commits.CURRENT_HEAD] == won[0] and "stale head" in err.message
    assert isinstance(results[8], NotFound)
    assert writes.count(world.alice.id) <= 2, writes
    await _assert_linear(world, root.id, won)
