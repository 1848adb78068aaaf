"""Domain records of the version-control service (no protobuf, no SQL)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    OWNER = 3


class Visibility(enum.IntEnum):
    PRIVATE = 1
    PUBLIC = 2


@dataclass(frozen=True)
class User:
    id: str
    username: str
    created_at: float


@dataclass(frozen=True)
class Repository:
    id: str
    owner_id: str
    owner_username: str
    name: str
    description: str
    visibility: Visibility
    default_branch: str
    forked_from_id: str | None
    created_at: float
    role: Role = Role.NONE


@dataclass(frozen=True)
class Collaborator:
    user_id: str
    username: str
    role: Role


@dataclass(frozen=True)
class Stem:
    name: str
    blob_key: str
    content_type: str = "audio/wav"
    size_bytes: int = 0
    duration_s: float = 0.0

    def canonical(self) -> dict[str, object]:
        return {
            "name": self.name,
            "blob_key": self.blob_key,
            "content_type": self.content_type,
            "size_bytes": self.size_bytes,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class Metadata:
    bpm: float | None = None
    key: str = ""
    duration_s: float | None = None
    sample_rate: int | None = None
    generation_json: str = ""

    def canonical(self) -> dict[str, object]:
        return {
            "bpm": self.bpm,
            "key": self.key,
            "duration_s": self.duration_s,
            "sample_rate": self.sample_rate,
            "generation_json": self.generation_json,
        }

    @classmethod
    def from_canonical(cls, data: dict[str, object]) -> Metadata:
        bpm = data.get("bpm")
        dur = data.get("duration_s")
        sr = data.get("sample_rate")
        return cls(
            bpm=float(bpm) if isinstance(bpm, (int, float)) else None,
            key=str(data.get("key") or ""),
            duration_s=float(dur) if isinstance(dur, (int, float)) else None,
            sample_rate=int(sr) if isinstance(sr, (int, float)) else None,
            generation_json=str(data.get("generation_json") or ""),
        )

    FIELDS = ("bpm", "key", "duration_s", "sample_rate", "generation_json")


@dataclass(frozen=True)
class Commit:
    id: str
    parent_ids: tuple[str, ...]
    author_id: str
    author_username: str
    message: str
    timestamp: float
    stems: tuple[Stem, ...]
    mixdown_blob: str
    metadata: Metadata
    generation: int = 1
    repo_id: str = ""

    def stem_map(self) -> dict[str, Stem]:
        return {s.name: s for s in self.stems}


@dataclass(frozen=True)
class Ref:
    name: str
    commit_id: str
    is_tag: bool = False
    message: str = ""


class ChangeKind(enum.IntEnum):
    ADDED = 1
    REMOVED = 2
    CHANGED = 3
    UNCHANGED = 4


@dataclass(frozen=True)
class StemChange:
    name: str
    kind: ChangeKind
    base_blob: str
    head_blob: str


@dataclass(frozen=True)
class MetadataChange:
    field: str
    base_value: str
    head_value: str


@dataclass(frozen=True)
class Diff:
    stems: list[StemChange]
    metadata: list[MetadataChange]


class Strategy(enum.IntEnum):
    CONFLICT = 0
    OURS = 1
    THEIRS = 2


@dataclass(frozen=True)
class StemConflict:
    name: str
    base_blob: str
    ours_blob: str
    theirs_blob: str


@dataclass
class MergeOutcome:
    merged: bool = False
    fast_forward: bool = False
    up_to_date: bool = False
    dry_run: bool = False
    commit: Commit | None = None
    conflicts: list[StemConflict] = field(default_factory=list)
    merge_bases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BlameEntry:
    stem: str
    blob_key: str
    commit: Commit


@dataclass(frozen=True)
class GcResult:
    deletable: list[str]
    referenced: int
    kept_young: int
    deleted: bool
