"""CreateCommit as one call: the head resolved in the transaction, stems named by blob key, job outputs registered.

A new branch starts from the default branch's head (or the commit named); an
unrelated root history only when asked (``orphan``); stems given by key get
type, size and duration from vcs (an earlier commit, else the blob's header).
"""

from __future__ import annotations

import asyncio
import functools
import io
import wave
from pathlib import Path

import pytest

from beatflow.common.blobstore import LocalBlobStore
from beatflow.common.errors import FailedPrecondition, InvalidArgument, NotFound
from beatflow.vcs.blobs import probe_blob
from beatflow.vcs.model import Metadata, Stem
from beatflow.vcs.service import VcsService


def _wav(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(seconds * rate))
    return buf.getvalue()


async def _head(world, branch: str = "main") -> str:
    refs = {r.name: r.commit_id for r in await world.vcs.list_refs(world.alice.id, world.repo.id) if not r.is_tag}
    return refs.get(branch, "")


async def test_new_branch_starts_at_the_default_head_or_the_commit_named(world, helpers) -> None:
    vcs, alice, repo = world.vcs, world.alice, world.repo
    c1 = await world.commit("one", drums="d1", bass="b1")
    c2 = await world.commit("two", drums="d2")
    # Onto the current head without naming it.
    c3 = await vcs.create_commit(
        alice.id, repo.id, message="three", stems=[helpers.stem("vox", "v3")], resolve_head=True, inherit_stems=True
    )
    assert c3.parent_ids == (c2.id,) and {s.name for s in c3.stems} == {"drums", "bass", "vox"}
    # A branch that does not exist starts at the default branch's head, stems inherited.
    side = await vcs.create_commit(
        alice.id,
        repo.id,
        branch="side",
        message="new drums",
        stems=[helpers.stem("drums", "d9")],
        resolve_head=True,
        inherit_stems=True,
    )
    assert side.parent_ids == (c3.id,)
    assert {s.name: s.blob_key for s in side.stems}["bass"] == helpers.blob("b1")
    # ... or at the commit named.
    old = await vcs.create_commit(
        alice.id,
        repo.id,
        branch="from-one",
        expected_head=c1.id,
        message="x",
        stems=[helpers.stem("pad", "p")],
        resolve_head=True,
    )
    assert old.parent_ids == (c1.id,) and await _head(world, "from-one") == old.id
    # Naming a head the branch has left is still a stale head.
    with pytest.raises(FailedPrecondition, match="stale head"):
        await vcs.create_commit(
            alice.id, repo.id, expected_head=c1.id, message="late", stems=[helpers.stem("a", "a")], resolve_head=True
        )
    with pytest.raises(NotFound):  # a start point outside the repository
        await vcs.create_commit(
            alice.id,
            repo.id,
            branch="nowhere",
            expected_head=helpers.blob("nope"),
            message="x",
            stems=[helpers.stem("a", "a")],
            resolve_head=True,
        )


async def test_orphan_only_when_asked(world, helpers) -> None:
    vcs, alice, repo = world.vcs, world.alice, world.repo
    await world.commit("one", drums="d1")
    root = await vcs.create_commit(
        alice.id,
        repo.id,
        branch="fresh",
        message="unrelated",
        stems=[helpers.stem("a", "a")],
        resolve_head=True,
        orphan=True,
    )
    assert root.parent_ids == ()
    with pytest.raises(FailedPrecondition, match="exists"):
        await vcs.create_commit(
            alice.id,
            repo.id,
            branch="main",
            message="x",
            stems=[helpers.stem("a", "a")],
            resolve_head=True,
            orphan=True,
        )
    with pytest.raises(InvalidArgument):
        await vcs.create_commit(
            alice.id, repo.id, branch="b2", message="x", stems=[helpers.stem("a", "a")], orphan=True
        )


async def test_concurrent_commits_onto_the_head_queue_instead_of_failing(world, helpers) -> None:
    vcs, alice, repo = world.vcs, world.alice, world.repo
    await world.commit("one", drums="d1")
    made = await asyncio.gather(
        *(
            vcs.create_commit(
                alice.id,
                repo.id,
                message=f"c{i}",
                stems=[helpers.stem(f"s{i}", f"x{i}")],
                resolve_head=True,
                inherit_stems=True,
            )
            for i in range(6)
        )
    )
    head = await vcs.checkout(alice.id, repo.id)
    assert {s.name for s in head.stems} == {"drums"} | {f"s{i}" for i in range(6)}
    assert len((await vcs.log(alice.id, repo.id, page_size=50))[0]) == 7 and head.id in {c.id for c in made}


async def test_stems_by_key_are_described_and_owned_outputs_registered(database_url, world, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    keys = [store.put_bytes(_wav(seconds), "audio/wav") for seconds in (1.0, 2.5)]
    vcs = VcsService(world.vcs.engine, probe_blob=functools.partial(probe_blob, store))
    alice, bob, repo = world.alice, world.bob, world.repo
    # Someone else's audio (never registered) is refused when readability is required.
    with pytest.raises(NotFound, match="not found"):
        await vcs.create_commit(
            alice.id,
            repo.id,
            message="x",
            stems=[Stem("mix", keys[0], "", 0, 0.0)],
            resolve_head=True,
            require_readable=True,
        )
    commit = await vcs.create_commit(
        alice.id,
        repo.id,
        message="task",
        stems=[Stem("drums", keys[0], "", 0, 0.0), Stem("bass", keys[1], "", 0, 0.0)],
        metadata=Metadata(bpm=120.0),
        resolve_head=True,
        owned_blobs=keys,
        require_readable=True,
    )
    stems = {s.name: s for s in commit.stems}
    assert stems["drums"].size_bytes == len(_wav(1.0)) and stems["drums"].duration_s == pytest.approx(1.0)
    assert stems["bass"].content_type == "audio/wav" and stems["bass"].duration_s == pytest.approx(2.5)
    assert commit.metadata.duration_s == pytest.approx(2.5) and commit.metadata.bpm == 120.0
    assert await vcs.can_read_blob(alice.id, keys[0]) and not await vcs.can_read_blob(bob.id, keys[0])
    # Metadata inherits from the parent; a later commit of the same blob is described without the store.
    store.delete(keys[1])
    again = await vcs.create_commit(
        alice.id,
        repo.id,
        message="again",
        stems=[Stem("bass2", keys[1], "", 0, 0.0)],
        resolve_head=True,
        inherit_metadata=True,
        metadata=Metadata(key="A minor"),
        require_readable=True,
    )
    assert {s.name: s.duration_s for s in again.stems}["bass2"] == pytest.approx(2.5)
    assert again.metadata.bpm == 120.0 and again.metadata.key == "A minor"
    with pytest.raises(InvalidArgument):  # owned blobs must be the commit's own
        await vcs.create_commit(
            alice.id,
            repo.id,
            message="x",
            stems=[Stem("a", keys[0], "", 0, 0.0)],
            resolve_head=True,
            owned_blobs=[keys[1]],
        )
