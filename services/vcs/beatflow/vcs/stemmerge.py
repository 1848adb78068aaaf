"""Stem-level diff and three-way merge (pure functions over stem maps).

A stem is compared as a whole record (blob, content type, size, duration).
Three-way rule per stem, with ``None`` meaning "absent":
ours == theirs -> take it; ours == base -> take theirs (their change, deletion
included); theirs == base -> take ours; otherwise a conflict, resolved by the
stem's strategy (``ours``/``theirs``) or reported.
Metadata fields and the mixdown follow the same rule; a metadata conflict takes
the default strategy's side (ours unless ``theirs``), a mixdown conflict drops
the mixdown (it no longer matches the merged stems).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from beatflow.vcs.model import (
    ChangeKind,
    Commit,
    Diff,
    Metadata,
    MetadataChange,
    Stem,
    StemChange,
    StemConflict,
    Strategy,
)

T = TypeVar("T")
StemMap = Mapping[str, Stem]

# Stands for a base stem on which several merge bases disagree: equal to no real side.
_CONFLICTED_BASE = "<conflicted-base>"


def diff_stems(base: StemMap, head: StemMap) -> list[StemChange]:
    out: list[StemChange] = []
    for name in sorted(base.keys() | head.keys()):
        b, h = base.get(name), head.get(name)
        if b is None and h is not None:
            out.append(StemChange(name, ChangeKind.ADDED, "", h.blob_key))
        elif h is None and b is not None:
            out.append(StemChange(name, ChangeKind.REMOVED, b.blob_key, ""))
        elif b is not None and h is not None:
            kind = ChangeKind.UNCHANGED if b == h else ChangeKind.CHANGED
            out.append(StemChange(name, kind, b.blob_key, h.blob_key))
    return out


def _fmt(value: object) -> str:
    return "" if value is None else str(value)


def diff_metadata(base: Metadata, head: Metadata) -> list[MetadataChange]:
    out = []
    for name in Metadata.FIELDS:
        b, h = getattr(base, name), getattr(head, name)
        if b != h:
            out.append(MetadataChange(name, _fmt(b), _fmt(h)))
    return out


def diff_commits(base: Commit, head: Commit) -> Diff:
    changes = diff_stems(base.stem_map(), head.stem_map())
    meta = diff_metadata(base.metadata, head.metadata)
    if base.mixdown_blob != head.mixdown_blob:
        meta.append(MetadataChange("mixdown_blob", base.mixdown_blob, head.mixdown_blob))
    return Diff(changes, meta)


def _pick(base: T, ours: T, theirs: T) -> tuple[bool, T]:
    """(clean, value) of a three-way choice; value is ours when not clean."""
    if ours == theirs or theirs == base:
        return True, ours
    if ours == base:
        return True, theirs
    return False, ours


def merge_stems(
    base: StemMap,
    ours: StemMap,
    theirs: StemMap,
    default: Strategy = Strategy.CONFLICT,
    per_stem: Mapping[str, Strategy] | None = None,
) -> tuple[dict[str, Stem], list[StemConflict]]:
    """Merged stem map and the conflicts no strategy resolved (in name order)."""
    per_stem = per_stem or {}
    merged: dict[str, Stem] = {}
    conflicts: list[StemConflict] = []
    for name in sorted(base.keys() | ours.keys() | theirs.keys()):
        b, o, t = base.get(name), ours.get(name), theirs.get(name)
        clean, value = _pick(b, o, t)
        if not clean:
            strategy = per_stem.get(name, default)
            if strategy == Strategy.OURS:
                value = o
            elif strategy == Strategy.THEIRS:
                value = t
            else:
                conflicts.append(
                    StemConflict(
                        name,
                        "" if b is None or b.blob_key == _CONFLICTED_BASE else b.blob_key,
                        "" if o is None else o.blob_key,
                        "" if t is None else t.blob_key,
                    )
                )
                continue
        if value is not None:
            merged[name] = value
    return merged, conflicts


def merge_metadata(base: Metadata, ours: Metadata, theirs: Metadata, default: Strategy) -> Metadata:
    values: dict[str, object] = {}
    for name in Metadata.FIELDS:
        b, o, t = getattr(base, name), getattr(ours, name), getattr(theirs, name)
        clean, value = _pick(b, o, t)
        if not clean and default == Strategy.THEIRS:
            value = t
        values[name] = value
    return Metadata(**values)  # type: ignore[arg-type]


def merge_mixdown(base: str, ours: str, theirs: str) -> str:
    clean, value = _pick(base, ours, theirs)
    return value if clean else ""


def virtual_base(bases: Sequence[Commit]) -> tuple[dict[str, Stem], Metadata, str]:
    """One base from several merge bases (criss-cross): what they agree on, a marker where they differ.

    A stem the bases disagree on becomes a marker equal to no real stem, so a
    side that left it alone still counts as a change only if the sides differ.
    """
    if not bases:
        return {}, Metadata(), ""
    first = bases[0]
    if len(bases) == 1:
        return first.stem_map(), first.metadata, first.mixdown_blob
    maps = [b.stem_map() for b in bases]
    stems: dict[str, Stem] = {}
    for name in set().union(*(m.keys() for m in maps)):
        values = [m.get(name) for m in maps]
        v0 = values[0]
        if all(v == v0 for v in values):
            if v0 is not None:
                stems[name] = v0
        else:
            stems[name] = Stem(name, _CONFLICTED_BASE)
    meta_values: dict[str, object] = {}
    for field_name in Metadata.FIELDS:
        vals = [getattr(b.metadata, field_name) for b in bases]
        meta_values[field_name] = vals[0] if all(v == vals[0] for v in vals) else None
    meta = Metadata(**meta_values)  # type: ignore[arg-type]
    mix = [b.mixdown_blob for b in bases]
    return stems, meta, mix[0] if all(m == mix[0] for m in mix) else _CONFLICTED_BASE
