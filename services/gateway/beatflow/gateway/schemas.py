"""The HTTP API's request and response bodies (they make the OpenAPI schema)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

_BLOB_RE = re.compile(r"^([0-9a-f]{64})(\.[a-z0-9]{1,5})?$")


def _blob_key(value: str) -> str:
    match = _BLOB_RE.match(value)
    if not match:
        raise ValueError("expected a blob key (64 hex digits), optionally with an extension")
    return match.group(1)


# A blob key, or a download file name "<key>.<ext>" (the extension is dropped).
BlobRef = Annotated[
    str, Field(pattern=r"^[0-9a-f]{64}(\.[a-z0-9]{1,5})?$", examples=["9f" * 32 + ".wav"]), AfterValidator(_blob_key)
]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
RefName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")]
StemName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.+()\-]*$")]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
Text = Annotated[str, Field(max_length=5000)]
Visibility = Literal["private", "public"]
RoleName = Literal["read", "write", "owner"]
TaskStatus = Literal["unspecified", "queued", "running", "succeeded", "failed", "cancelled", "dead"]
ChangeName = Literal["unspecified", "added", "removed", "changed", "unchanged"]


def _clean(value: Any) -> Any:
    """Refuse NUL characters and lone surrogates anywhere in a body: no backend can store them."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _clean(k)
            _clean(v)
    elif isinstance(value, list | tuple):
        for item in value:
            _clean(item)
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_unstorable_text(cls, value: Any) -> Any:
        return _clean(value)


# --- users -------------------------------------------------------------------


class Credentials(Strict):
    username: str = Field(min_length=3, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    password: str = Field(min_length=8, max_length=256)


class UserOut(BaseModel):
    id: str
    username: str
    created_at: float


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserOut


# --- repositories --------------------------------------------------------------


class RepositoryCreate(Strict):
    name: Name
    description: Text = ""
    visibility: Visibility = "private"
    default_branch: RefName = "main"


class RepositoryOut(BaseModel):
    id: str
    owner_id: str
    owner_username: str
    name: str
    description: str
    visibility: Visibility
    default_branch: str
    forked_from_id: str | None
    created_at: float
    role: RoleName | None = Field(description="The caller's role on the repository")


class RepositoryList(BaseModel):
    repositories: list[RepositoryOut]
    next_page_token: str | None


class CollaboratorSet(Strict):
    role: Literal["read", "write"]


class CollaboratorOut(BaseModel):
    user_id: str
    username: str
    role: RoleName | None


class CollaboratorList(BaseModel):
    collaborators: list[CollaboratorOut]


# --- commits -------------------------------------------------------------------


class StemIn(Strict):
    name: StemName
    blob_key: BlobRef


class StemOut(BaseModel):
    name: str
    blob_key: str
    content_type: str
    size_bytes: int
    duration_s: float
    download_url: str


class CommitMetadataOut(BaseModel):
    bpm: float | None
    key: str
    duration_s: float | None
    sample_rate: int | None
    generation: dict[str, Any] | None


class CommitOut(BaseModel):
    id: str
    repo_id: str
    parent_ids: list[str]
    author_id: str
    author_username: str
    message: str
    timestamp: float
    stems: list[StemOut]
    mixdown_blob: str | None
    mixdown_url: str | None
    metadata: CommitMetadataOut


class CommitCreate(Strict):
    message: str = Field(min_length=1, max_length=5000)
    branch: RefName | None = Field(None, description="Default: the repository's default branch")
    parent_commit_id: Id | None = Field(
        None,
        description="An existing branch: the head the caller built on (compare-and-swap; 409 if it moved). "
        "A branch that does not exist yet: the commit it starts from. "
        "Omitted: appended atomically to the branch's head at write time (concurrent commits queue, none is "
        "refused), or for a new branch started at the default branch's head.",
    )
    stems: list[StemIn] = Field(default_factory=list, max_length=64)
    from_task: Id | None = Field(
        None, description="Add the outputs of this finished task as stems (generation: 'mix'; separation: each stem)"
    )
    mixdown_blob: BlobRef | None = None
    inherit_stems: bool = Field(False, description="Carry over the parent's stems not named here")
    remove_stems: list[StemName] = Field(default_factory=list, max_length=64)
    bpm: float | None = Field(None, gt=0, le=1000)
    key: str = Field("", max_length=32)
    duration_s: float | None = Field(None, ge=0, le=86400)
    sample_rate: int | None = Field(None, gt=0, le=768000)
    generation: dict[str, Any] | None = None
    inherit_metadata: bool = Field(True, description="Start from the parent's metadata (bpm, key, generation record)")
    orphan: bool = Field(False, description="Start a new branch as an unrelated history (a root commit with no parent)")

    @model_validator(mode="after")
    def _something_to_commit(self) -> CommitCreate:
        if not (self.stems or self.from_task or self.mixdown_blob or self.inherit_stems):
            raise ValueError(
                "nothing to commit: give stems (name and blob_key of uploaded audio), from_task (the id of a "
                "finished task whose outputs become stems), or inherit_stems: true to keep the parent's stems"
            )
        if self.orphan and (self.parent_commit_id or self.inherit_stems):
            raise ValueError("an orphan commit has no parent: drop parent_commit_id and inherit_stems")
        return self


class CommitList(BaseModel):
    commits: list[CommitOut]
    next_page_token: str | None


class RefOut(BaseModel):
    name: str
    commit_id: str
    is_tag: bool
    message: str


class RefList(BaseModel):
    refs: list[RefOut]


class BranchCreate(Strict):
    name: RefName
    from_ref: str = Field(
        "",
        max_length=200,
        pattern=r"^[A-Za-z0-9_.\-/]*$",
        description="Branch, tag or commit; default: the default branch",
    )


class BranchRename(Strict):
    new_name: RefName


class TagCreate(Strict):
    name: RefName
    target: str = Field("", max_length=200, pattern=r"^[A-Za-z0-9_.\-/]*$")
    message: Text = ""


class GraphNode(BaseModel):
    commit: CommitOut
    row: int
    lane: int


class GraphEdgeOut(BaseModel):
    child: str
    parent: str


class GraphOut(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdgeOut]
    refs: list[RefOut]
    lanes: int


class ForkCreate(Strict):
    repo_id: Id
    name: Name | None = None
    visibility: Visibility | None = None


class StemChangeOut(BaseModel):
    name: str
    change: ChangeName
    base_blob: str | None
    head_blob: str | None


class MetadataChangeOut(BaseModel):
    field: str
    base_value: str
    head_value: str


class DiffOut(BaseModel):
    base: str
    head: str
    stems: list[StemChangeOut]
    metadata: list[MetadataChangeOut]


StrategyName = Literal["ours", "theirs"]


class MergeCreate(Strict):
    from_ref: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-/]*$")
    into_branch: RefName | None = None
    expected_head: Id | None = None
    message: Text = ""
    strategy: Literal["report", "ours", "theirs"] = Field(
        "report", description="How stems changed on both sides are settled; 'report' refuses with the conflicts"
    )
    stem_strategies: dict[StemName, StrategyName] = Field(default_factory=dict, description="Per-stem resolution")
    no_fast_forward: bool = False
    dry_run: bool = False


class ConflictOut(BaseModel):
    name: str
    base_blob: str | None
    ours_blob: str | None
    theirs_blob: str | None


class MergeOut(BaseModel):
    merged: bool
    fast_forward: bool
    up_to_date: bool
    commit: CommitOut | None
    conflicts: list[ConflictOut]
    merge_bases: list[str]


class MergeConflictOut(BaseModel):
    """409 body: the conflicts of a refused merge (empty when the branch moved instead)."""

    detail: str
    conflicts: list[ConflictOut] = []
    merge_bases: list[str] = []


class RevertCreate(Strict):
    commit_id: Id
    branch: RefName | None = None
    expected_head: Id | None = None
    message: Text = ""


class BlameEntryOut(BaseModel):
    stem: str
    blob_key: str
    commit: CommitOut


class BlameOut(BaseModel):
    entries: list[BlameEntryOut]


class MergeBaseOut(BaseModel):
    merge_bases: list[str]


# --- AI tasks -----------------------------------------------------------------


class GenerateCreate(Strict):
    prompt: str = Field(min_length=1, max_length=2000, examples=["Upbeat electronic music"])
    bpm: float | None = Field(None, ge=20, le=300)
    mood: str = Field("", max_length=100)
    genre: str = Field("", max_length=100)
    key: str = Field("", max_length=32)
    instruments: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=16)
    duration: float = Field(10.0, gt=0, le=300, description="Seconds of audio")
    seed: int | None = Field(None, ge=0, le=2**62)
    top_k: int | None = Field(None, ge=0, le=4096)
    top_p: float | None = Field(None, ge=0, le=1)
    temperature: float | None = Field(None, gt=0, le=10)
    guidance_scale: float | None = Field(None, ge=0, le=20)
    greedy: bool = False
    num_variations: int = Field(1, ge=1, le=4)
    format: Literal["wav", "flac", "mp3"] = "wav"
    melody_blob: BlobRef | None = Field(None, description="Hum-to-beat: a recording whose melody conditions the music")
    prompt_audio_blob: BlobRef | None = Field(None, description="Continue this audio")


class HumToBeatCreate(Strict):
    melody_blob: BlobRef
    prompt: str = Field("", max_length=2000)
    bpm: float | None = Field(None, ge=20, le=300)
    mood: str = Field("", max_length=100)
    genre: str = Field("", max_length=100)
    duration: float = Field(10.0, gt=0, le=300)
    seed: int | None = Field(None, ge=0, le=2**62)
    temperature: float | None = Field(None, gt=0, le=10)
    guidance_scale: float | None = Field(None, ge=0, le=20)
    format: Literal["wav", "flac", "mp3"] = "wav"


class SeparateCreate(Strict):
    audio_blob: BlobRef
    model: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_.\-]*$", description="htdemucs (default), tiny, ...")
    two_stems: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_\-]*$")
    shifts: int = Field(0, ge=0, le=10)
    overlap: float | None = Field(None, ge=0, lt=1)
    segment_s: float | None = Field(None, gt=0, le=600)
    format: Literal["wav", "flac"] = "wav"
    residual_stem: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_\-]*$")


class AnalyzeCreate(Strict):
    audio_blob: BlobRef
    background: bool = Field(False, description="Run as a task instead of answering at once")


class AnalysisOut(BaseModel):
    bpm: float
    bpm_confidence: float
    key_tonic: str
    key_mode: str
    key: str
    key_confidence: float
    duration_s: float
    sample_rate: int
    channels: int
    loudness_lufs: float
    peak_dbfs: float


class TaskFile(BaseModel):
    blob_key: str
    filename: str
    download_url: str


class TaskOut(BaseModel):
    task_id: str
    kind: str
    status: TaskStatus
    progress: float
    stage: str
    queue_position: int
    error: str | None
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    files: dict[str, TaskFile] = Field(description="Named outputs of a finished task")
    result: dict[str, Any] | None = Field(description="Kind-specific result record")


class AnalyzeOut(BaseModel):
    analysis: AnalysisOut | None
    task: TaskOut | None


class TaskEventOut(BaseModel):
    event_id: str
    task_id: str
    status: TaskStatus
    progress: float
    stage: str
    error: str | None
    files: dict[str, TaskFile]
    chunk_blob: str | None
    timestamp: float


# --- audio ----------------------------------------------------------------------


class UploadOut(BaseModel):
    blob_key: str
    filename: str
    content_type: str
    size_bytes: int
    duration_s: float
    sample_rate: int
    channels: int
    download_url: str


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    backends: dict[str, str]
