from __future__ import annotations


async def test_smoke(world) -> None:
    c1 = await world.commit("first", drums="d1", bass="b1")
    c2 = await world.commit("second", drums="d2", bass="b1")
    commits, token = await world.vcs.log(world.alice.id, world.repo.id)
    assert [c.id for c in commits] == [c2.id, c1.id]
    fp, _ = await world.vcs.log(world.alice.id, world.repo.id, first_parent=True)
    assert [c.id for c in fp] == [c2.id, c1.id]
    assert await world.vcs.merge_base(world.alice.id, world.repo.id, c1.id, c2.id) == [c1.id]
    assert await world.vcs.is_ancestor(world.alice.id, world.repo.id, c1.id, c2.id)
    bl = await world.vcs.blame(world.alice.id, world.repo.id)
    assert {e.stem: e.commit.id for e in bl} == {"drums": c2.id, "bass": c1.id}
