"""The HTTP API's request and response bodies (they make the OpenAPI schema)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self, TypeAlias

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from beatflow.gateway.names import RefName, RefOrCommit, RepoName, StemName, Username

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
Name: TypeAlias = RepoName  # the naming rules (as vcs enforces them) live in names.py
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
CommitHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="A commit id (64 hex digits)")]
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


# "Not blank", spelled out: a character that is not whitespace by Python's str.strip (the services
# strip), written without \s or \S, whose meaning differs between the validating regex engine and
# the JSON-schema readers that generate requests.
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{WHITESPACE}]"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_unstorable_text(cls, value: Any) -> Any:
        return _clean(value)


# --- users -------------------------------------------------------------------


class Credentials(Strict):
    username: Username
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
    description: str = Field("", max_length=2000)
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
    download_name: str = Field("", description="A readable file name; pass it as ?name= when downloading")


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
    parent_commit_id: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] | None = Field(
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
    from_ref: RefOrCommit = Field("", description="Branch, tag or commit; default: the default branch")


class BranchRename(Strict):
    new_name: RefName


class TagCreate(Strict):
    name: RefName
    target: RefOrCommit = Field("", description="Branch, tag or commit; default: the default branch")
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
    from_ref: RefOrCommit = Field(min_length=1)
    into_branch: RefName | None = None
    expected_head: CommitHash | None = None
    message: Text = ""
    strategy: Literal["report", "ours", "theirs"] = Field(
        "report", description="How stems changed on both sides are settled; 'report' refuses with the conflicts"
    )
    stem_strategies: dict[StemName, StrategyName] = Field(
        default_factory=dict,
        description="Per-stem resolution",
        json_schema_extra={"additionalProperties": False},  # keys outside the stem-name pattern are refused
    )
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
    commit_id: CommitHash
    branch: RefName | None = None
    expected_head: CommitHash | None = None
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

WebhookEvent = Literal["started", "progress", "completed", "failed", "cancelled"]


class TaskOptions(Strict):
    """Deadline and webhook, accepted by every task-creating request."""

    deadline_s: float | None = Field(
        None,
        gt=0,
        le=366 * 86400,
        description="Cancel the task (reason 'deadline') if it has not finished this many seconds after submit; "
        "the Cancel-After header does the same",
    )
    webhook_url: str | None = Field(
        None,
        max_length=2048,
        # http(s), a host name or IPv4 address without credentials, a port in range: what vcs checks
        pattern=r"^https?://[A-Za-z0-9._~-]+"
        r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
        r"([/?#][^\x00-\x20\x7f]*)?$",
        description="POST signed events (Standard Webhooks; secret at /api/webhooks/secret) to this http(s) URL; "
        "private, loopback and link-local targets are refused",
    )
    webhook_events: list[WebhookEvent] | None = Field(
        None, max_length=5, description="Events to send; default all but 'progress' (at most one per 5 s)"
    )

    @model_validator(mode="after")
    def _events_need_a_url(self) -> Self:
        if self.webhook_events and not self.webhook_url:
            raise ValueError("webhook_events need a webhook_url")
        return self


class GenerateCreate(TaskOptions):
    prompt: str = Field(
        min_length=1, max_length=2000, pattern=NOT_BLANK, examples=["Upbeat electronic music"], description="Not blank"
    )
    bpm: float | None = Field(None, ge=20, le=300)
    mood: str = Field("", max_length=100)
    genre: str = Field("", max_length=100)
    key: str = Field("", max_length=32)
    instruments: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=16)
    duration: float = Field(10.0, ge=0.1, le=300, description="Seconds of audio")
    seed: int | None = Field(None, ge=0, le=2**62)
    top_k: int | None = Field(None, ge=0, le=2048, description="0 disables it")
    top_p: float | None = Field(None, ge=0, le=1)
    temperature: float | None = Field(None, ge=0.01, le=10)
    guidance_scale: float | None = Field(None, ge=0, le=20)
    greedy: bool = False
    num_variations: int = Field(1, ge=1, le=4)
    format: Literal["wav", "flac", "mp3"] = "wav"
    melody_blob: BlobRef | None = Field(None, description="Hum-to-beat: a recording whose melody conditions the music")
    prompt_audio_blob: BlobRef | None = Field(None, description="Continue this audio")
    conform: bool | None = Field(
        None,
        description="Time-stretch each result to `bpm` and pitch-shift it to `key` when the measured tempo or key "
        "differs (the record's `conform` shows before, after and what was applied). Default: on when `bpm` or "
        "`key` is given",
    )
    loop: bool = Field(
        False, description="Trim to a whole number of bars from a downbeat, crossfaded so it loops seamlessly"
    )


class HumToBeatCreate(TaskOptions):
    melody_blob: BlobRef
    prompt: str = Field("", max_length=2000)
    bpm: float | None = Field(None, ge=20, le=300)
    mood: str = Field("", max_length=100)
    genre: str = Field("", max_length=100)
    duration: float = Field(10.0, ge=0.1, le=300)
    seed: int | None = Field(None, ge=0, le=2**62)
    temperature: float | None = Field(None, ge=0.01, le=10)
    guidance_scale: float | None = Field(None, ge=0, le=20)
    format: Literal["wav", "flac", "mp3"] = "wav"


class SeparateCreate(TaskOptions):
    audio_blob: BlobRef
    model: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_.\-]*$", description="htdemucs (default), tiny, ...")
    two_stems: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_\-]*$")
    shifts: int = Field(0, ge=0, le=10)
    overlap: float | None = Field(None, ge=0, lt=1)
    segment_s: float | None = Field(None, ge=0.1, le=30)
    format: Literal["wav", "flac"] = "wav"
    residual_stem: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_\-]*$")


class AnalyzeCreate(TaskOptions):
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
    download_name: str = Field("", description="A readable file name (prompt or stem + short id)")


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
    max_attempts: int = Field(0, description="Attempts the task may take in all (first run plus retries)")
    retry_at: float | None = Field(None, description="While a failed attempt waits out its backoff: when it retries")
    retry_delay_s: float | None = Field(None, description="The backoff chosen for the pending retry")
    deadline_at: float | None = Field(None, description="Unix time at which the task is cancelled if not finished")
    cancel_reason: Literal["user", "deadline"] | None = Field(None, description="Why a cancelled task was cancelled")
    eta_s: float | None = Field(
        None, description="Estimated seconds until the task finishes (null: nothing measured yet); see eta_basis"
    )
    eta_basis: str = Field("", description="How eta_s was estimated (recent throughput of this kind of task)")
    webhook_url: str | None = None
    webhook_events: list[str] = Field(default_factory=list)


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
    queue_position: int = Field(0, description="At the time the event was sent")
    eta_s: float | None = Field(None, description="At the time the event was sent (null: unknown)")
    attempts: int = 0
    retry_at: float | None = None


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="whsec_-prefixed key for any Standard Webhooks verifier")


class WebhookDeliveryOut(BaseModel):
    event_id: str = Field(description="The webhook-id header: the same on every attempt and redelivery")
    task_id: str
    type: str
    url: str
    attempts: int
    last_error: str
    created_at: float
    status: Literal["pending", "delivered", "dead"] | str


class WebhookDeliveryList(BaseModel):
    deliveries: list[WebhookDeliveryOut]


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


class BlobsExistIn(Strict):
    blob_keys: list[BlobRef] = Field(min_length=1, max_length=1000, description="Content hashes (SHA-256) to look up")


class BlobsExistOut(BaseModel):
    present: list[str] = Field(description="Stored, and readable by the caller: no need to upload these")
    missing: list[str] = Field(description="Absent, or stored but not the caller's to read: upload these")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    backends: dict[str, str]


SeedStatus = Literal["pending", "running", "success", "failure", "cancelled"]


class SeedTaskOut(TaskOut):
    """``GET /api/ai/status/{id}``: the seed guide's shape with the richer fields alongside.

    ``status`` uses the guide's words (``success`` when done, ``failure`` when it failed);
    ``state`` keeps the precise state; ``result`` adds ``audio_url`` and ``filename`` of the
    first output (and ``files``) to the kind-specific record once the task succeeded.
    """

    status: SeedStatus  # type: ignore[assignment]
    state: TaskStatus = Field(description="The precise state (as in /api/ai/tasks/{id})")
