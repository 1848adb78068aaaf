"""Three-way stem merge, diff and the content hash (pure functions)."""

from __future__ import annotations

import hashlib

from beatflow.vcs.hashing import commit_id
from beatflow.vcs.model import ChangeKind, Commit, Metadata, Stem, Strategy
from beatflow.vcs.stemmerge import diff_stems, merge_metadata, merge_mixdown, merge_stems, virtual_base


def blob(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def stem(name: str, label: str | None = None) -> Stem:
    return Stem(name, blob(label or name), "audio/wav", 1000, 1.5)


def m(**stems: str):
    return {name: stem(name, label) for name, label in stems.items()}


def test_one_sided_changes_are_taken() -> None:
    base = m(drums="d0", bass="b0", keys="k0")
    ours = m(drums="d1", bass="b0", keys="k0", vox="v1")  # changed drums, added vox
    theirs = m(drums="d0", bass="b2")  # changed bass, removed keys
    merged, conflicts = merge_stems(base, ours, theirs)
    assert conflicts == []
    assert merged == m(drums="d1", bass="b2", vox="v1")


def test_same_change_on_both_sides_is_not_a_conflict() -> None:
    merged, conflicts = merge_stems(m(drums="d0"), m(drums="d1"), m(drums="d1"))
    assert conflicts == [] and merged == m(drums="d1")


def test_conflicts_are_reported_per_stem_and_resolved_by_strategy() -> None:
    base = m(drums="d0", bass="b0")
    ours = m(drums="d1", bass="b1")
    theirs = m(drums="d2")  # drums changed differently, bass changed vs removed
    merged, conflicts = merge_stems(base, ours, theirs)
    assert [c.name for c in conflicts] == ["bass", "drums"]
    drums = next(c for c in conflicts if c.name == "drums")
    assert (drums.base_blob, drums.ours_blob, drums.theirs_blob) == (blob("d0"), blob("d1"), blob("d2"))
    assert next(c for c in conflicts if c.name == "bass").theirs_blob == ""
    merged, conflicts = merge_stems(base, ours, theirs, Strategy.CONFLICT, {"drums": Strategy.THEIRS})
    assert [c.name for c in conflicts] == ["bass"]
    merged, conflicts = merge_stems(base, ours, theirs, Strategy.OURS, {"drums": Strategy.THEIRS})
    assert conflicts == [] and merged == m(drums="d2", bass="b1")
    merged, conflicts = merge_stems(base, ours, theirs, Strategy.THEIRS)
    assert conflicts == [] and merged == m(drums="d2")


def test_add_add_conflict() -> None:
    _, conflicts = merge_stems({}, m(vox="a"), m(vox="b"))
    assert [(c.name, c.base_blob) for c in conflicts] == [("vox", "")]


def test_metadata_and_mixdown() -> None:
    base = Metadata(bpm=120, key="C major")
    ours = Metadata(bpm=128, key="C major")
    theirs = Metadata(bpm=120, key="A minor")
    assert merge_metadata(base, ours, theirs, Strategy.CONFLICT) == Metadata(bpm=128, key="A minor")
    both = Metadata(bpm=90, key="C major")
    assert merge_metadata(base, ours, both, Strategy.CONFLICT).bpm == 128
    assert merge_metadata(base, ours, both, Strategy.THEIRS).bpm == 90
    assert merge_mixdown("a", "a", "b") == "b"
    assert merge_mixdown("a", "c", "b") == ""  # a stale mixdown is dropped


def test_diff() -> None:
    changes = diff_stems(m(drums="d0", bass="b0", keys="k"), m(drums="d1", bass="b0", vox="v"))
    kinds = {c.name: c.kind for c in changes}
    assert kinds == {
        "bass": ChangeKind.UNCHANGED,
        "drums": ChangeKind.CHANGED,
        "keys": ChangeKind.REMOVED,
        "vox": ChangeKind.ADDED,
    }


def _commit(cid: str, **stems: str) -> Commit:
    return Commit(cid, (), "u", "u", "", 0.0, tuple(m(**stems).values()), "", Metadata())


def test_virtual_base_of_criss_cross() -> None:
    stems, _, _ = virtual_base([_commit("x", drums="d1", bass="b"), _commit("y", drums="d2", bass="b")])
    assert stems["bass"] == stem("bass", "b")
    # Drums differ between the bases: equal sides merge cleanly, different sides conflict.
    assert merge_stems(stems, m(drums="d1", bass="b"), m(drums="d1", bass="b"))[1] == []
    assert [c.name for c in merge_stems(stems, m(drums="d1", bass="b"), m(drums="d2", bass="b"))[1]] == ["drums"]


def test_commit_id_is_content_addressed() -> None:
    fields = dict(
        parents=["a" * 64],
        stems=[stem("drums"), stem("bass")],
        mixdown_blob="",
        metadata=Metadata(bpm=120.0),
        author_id="u1",
        message="hi",
        timestamp=1.5,
    )
    same = commit_id(**{**fields, "stems": [stem("bass"), stem("drums")]})  # order of stems does not matter
    assert commit_id(**fields) == same
    for change in ({"message": "hi!"}, {"timestamp": 1.6}, {"author_id": "u2"}, {"parents": []}):
        assert commit_id(**{**fields, **change}) != same
    assert len(same) == 64
