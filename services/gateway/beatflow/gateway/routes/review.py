"""Review over HTTP: comments on commits (anchored to a stem and a time range), merge requests, activity.

Permissions are the vcs service's (readers comment and review; writers merge; strangers to a
private repository get 404). A comment's ``stem``/``start_s``/``end_s`` and a merge request's
stem changes and conflicts are what the studio needs to draw comments at their times and
regions on the compare waveforms.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from beatflow.gateway import convert, schemas
from beatflow.gateway.deps import GatewayState, State, User
from beatflow.gateway.httperrors import ApiError
from beatflow.v1 import jobs_pb2, separator_pb2, vcs_pb2

router = APIRouter(prefix="/api/vcs", tags=["review"])

RepoId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
CommentId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
MergeRequestRef = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$", description="The request's id or number")
]
PageSize = Annotated[int, Query(ge=1, le=200)]
# Plain text, not blank: no control characters but newline and tab (vcs's rule, stated in the schema).
CommentBody = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4000,
        pattern=rf"^[^\x00-\x08\x0b-\x1f\x7f]*[^{schemas.WHITESPACE}\x00-\x1f\x7f][^\x00-\x08\x0b-\x1f\x7f]*$",
        description="Plain text (newlines and tabs allowed, no other control characters), not blank",
    ),
]
PageToken = Annotated[str, Query(max_length=512, pattern=r"^[A-Za-z0-9_\-]*$")]
Verdict = Literal["approve", "request_changes", "comment"]
State_ = Literal["open", "merged", "closed"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid value (e.g. a time range outside the stem)"},
    403: {"description": "Not allowed (e.g. editing someone else's comment, a reader merging)"},
    404: {"description": "No such repository, commit, comment or request (or not visible)"},
}
_STRATEGY = {
    "report": vcs_pb2.MERGE_STRATEGY_UNSPECIFIED,
    "ours": vcs_pb2.MERGE_STRATEGY_OURS,
    "theirs": vcs_pb2.MERGE_STRATEGY_THEIRS,
}


# --- bodies -------------------------------------------------------------------------------------


class CommentCreate(schemas.Strict):
    """A thread on ``commit_id`` or on ``merge_request`` (its proposed head), or a reply (``parent_id``)."""

    body: CommentBody
    commit_id: schemas.Id | None = None
    merge_request: schemas.Id | None = Field(None, description="Id or number of a merge request into this repository")
    parent_id: schemas.Id | None = None
    stem: schemas.StemName | None = Field(None, description="Anchor the thread to this stem of the commit")
    start_s: float | None = Field(None, ge=0, description="With end_s: a range within the stem's duration")
    end_s: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _target(self) -> CommentCreate:
        if sum(x is not None for x in (self.commit_id, self.merge_request, self.parent_id)) != 1:
            raise ValueError("give exactly one of commit_id, merge_request, parent_id")
        if (self.start_s is None) != (self.end_s is None):
            raise ValueError("give both start_s and end_s, or neither")
        if self.start_s is not None and self.stem is None:
            raise ValueError("a time range needs a stem")
        if self.parent_id is not None and self.stem is not None:
            raise ValueError("a reply cannot carry an anchor (the thread's first comment holds it)")
        return self


class CommentEdit(schemas.Strict):
    body: CommentBody


class CommentResolve(schemas.Strict):
    resolved: bool = True


class CommentOut(BaseModel):
    id: str
    repo_id: str
    commit_id: str
    merge_request_id: str | None
    parent_id: str | None = Field(description="The thread's first comment; null for a thread")
    author_id: str
    author_username: str
    body: str
    stem: str | None
    start_s: float | None
    end_s: float | None
    resolved: bool
    resolved_by: str | None
    deleted: bool
    created_at: float
    updated_at: float


class CommentsOut(BaseModel):
    comments: list[CommentOut] = Field(description="Oldest first; group replies under parent_id")
    next_page_token: str | None


class MergeRequestCreate(schemas.Strict):
    source_branch: schemas.RefName
    source_repo_id: schemas.Id | None = Field(None, description="A fork of this repository's family; default: this one")
    target_branch: schemas.RefName | None = Field(None, description="Default: the default branch")
    title: str = Field(min_length=1, max_length=200, pattern=schemas.NOT_BLANK, description="Not blank")
    description: str = Field("", max_length=10000)


class ReviewCreate(schemas.Strict):
    verdict: Verdict
    body: str = Field("", max_length=10000)


class MergeRequestStateChange(schemas.Strict):
    state: Literal["open", "closed"]


class MergeRequestMerge(schemas.Strict):
    strategy: Literal["report", "ours", "theirs"] = Field(
        "report", description="How stems changed on both sides are settled; 'report' refuses with the conflicts"
    )
    stem_strategies: dict[schemas.StemName, schemas.StrategyName] = Field(
        default_factory=dict,
        description="Per-stem resolution",
        json_schema_extra={"additionalProperties": False},  # keys outside the stem-name pattern are refused
    )
    message: schemas.Text = ""


class ReviewOut(BaseModel):
    reviewer_id: str
    reviewer_username: str
    verdict: Verdict
    body: str
    source_head: str
    created_at: float
    current: bool = Field(description="Given on the request's current source head")


class EvaluationOut(BaseModel):
    source_head: str
    target_head: str
    merge_bases: list[str]
    up_to_date: bool
    conflicts: list[schemas.ConflictOut]
    changes: list[schemas.StemChangeOut] = Field(description="Stems the source changes since the merge base")


class MergeRequestOut(BaseModel):
    id: str
    number: int
    target_repo_id: str
    target_branch: str
    source_repo_id: str | None
    source_branch: str
    author_id: str
    author_username: str
    title: str
    description: str
    state: State_
    source_head: str = Field(description="Heads at the last evaluation: what reviewers saw")
    target_head: str
    conflicts: list[str]
    merge_commit_id: str | None
    merged_by: str | None
    version: int
    created_at: float
    updated_at: float
    reviews: list[ReviewOut] = Field(description="The latest verdict of each reviewer")
    evaluation: EvaluationOut | None = Field(None, description="At the branches' current heads (open requests)")


class MergeRequestsOut(BaseModel):
    merge_requests: list[MergeRequestOut]
    next_page_token: str | None


class MergeRequestMergeOut(BaseModel):
    merged: bool
    stale: bool = Field(description="A head moved since the last evaluation: re-evaluated, nothing merged")
    request: MergeRequestOut
    merge: schemas.MergeOut | None


class MergeRequestRefusedOut(BaseModel):
    """409 body: the merge was not done (conflicts to resolve, or re-evaluated because a head moved)."""

    detail: str
    stale: bool
    conflicts: list[schemas.ConflictOut]
    request: MergeRequestOut


class ActivityEventOut(BaseModel):
    seq: int
    repo_id: str
    repo: str = Field(description="owner/name")
    actor_id: str | None
    actor_username: str | None
    kind: str = Field(
        description="branch_created, push, branch_deleted, branch_renamed, tag_created, tag_deleted, comment, "
        "comment_reply, comment_resolved, comment_unresolved, merge_request_opened, merge_request_updated, "
        "merge_request_closed, merge_request_reopened, merge_request_merged, review_approve, "
        "review_request_changes, review_comment"
    )
    ref_name: str | None
    commit_id: str | None
    old_commit_id: str | None
    comment_id: str | None
    merge_request_id: str | None
    summary: str
    created_at: float


class ActivityOut(BaseModel):
    events: list[ActivityEventOut] = Field(description="Newest first")
    next_page_token: str | None


# --- conversion ---------------------------------------------------------------------------------


def _comment(c: vcs_pb2.Comment) -> CommentOut:
    return CommentOut(
        id=c.id,
        repo_id=c.repo_id,
        commit_id=c.commit_id,
        merge_request_id=c.merge_request_id or None,
        parent_id=c.parent_id or None,
        author_id=c.author_id,
        author_username=c.author_username,
        body=c.body,
        stem=c.stem or None,
        start_s=c.start_s if c.HasField("start_s") else None,
        end_s=c.end_s if c.HasField("end_s") else None,
        resolved=c.resolved,
        resolved_by=c.resolved_by or None,
        deleted=c.deleted,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def _evaluation(e: vcs_pb2.MergeRequestEvaluation) -> EvaluationOut:
    changes = convert.diff(vcs_pb2.DiffResponse(stems=e.changes), "", "").stems
    return EvaluationOut(
        source_head=e.source_head,
        target_head=e.target_head,
        merge_bases=list(e.merge_bases),
        up_to_date=e.up_to_date,
        conflicts=convert.conflicts(e.conflicts),
        changes=changes,
    )


def _request(m: vcs_pb2.MergeRequestInfo, evaluation: vcs_pb2.MergeRequestEvaluation | None = None) -> MergeRequestOut:
    return MergeRequestOut(
        id=m.id,
        number=m.number,
        target_repo_id=m.target_repo_id,
        target_branch=m.target_branch,
        source_repo_id=m.source_repo_id or None,
        source_branch=m.source_branch,
        author_id=m.author_id,
        author_username=m.author_username,
        title=m.title,
        description=m.description,
        state=m.state,  # type: ignore[arg-type]
        source_head=m.source_head,
        target_head=m.target_head,
        conflicts=list(m.conflicts),
        merge_commit_id=m.merge_commit_id or None,
        merged_by=m.merged_by or None,
        version=m.version,
        created_at=m.created_at,
        updated_at=m.updated_at,
        reviews=[
            ReviewOut(
                reviewer_id=r.reviewer_id,
                reviewer_username=r.reviewer_username,
                verdict=r.verdict,
                body=r.body,
                source_head=r.source_head,
                created_at=r.created_at,
                current=r.current,
            )
            for r in m.reviews
        ],
        evaluation=_evaluation(evaluation) if evaluation is not None and evaluation.target_head else None,
    )


def _view(v: vcs_pb2.MergeRequestView) -> MergeRequestOut:
    return _request(v.request, v.evaluation if v.HasField("evaluation") else None)


def _activity(reply: vcs_pb2.ActivityResponse) -> ActivityOut:
    return ActivityOut(
        events=[
            ActivityEventOut(
                seq=e.seq,
                repo_id=e.repo_id,
                repo=f"{e.repo_owner}/{e.repo_name}",
                actor_id=e.actor_id or None,
                actor_username=e.actor_username or None,
                kind=e.kind,
                ref_name=e.ref_name or None,
                commit_id=e.commit_id or None,
                old_commit_id=e.old_commit_id or None,
                comment_id=e.comment_id or None,
                merge_request_id=e.merge_request_id or None,
                summary=e.summary,
                created_at=e.created_at,
            )
            for e in reply.events
        ],
        next_page_token=reply.next_page_token or None,
    )


# --- comments -----------------------------------------------------------------------------------


@router.get("/comments/{repo_id}", responses=_ERRORS, summary="Comments of a commit, a merge request or the repository")
async def list_comments(
    repo_id: RepoId,
    state: State,
    user: User,
    commit: Annotated[str, Query(max_length=128, pattern=r"^[A-Za-z0-9_\-]*$")] = "",
    merge_request: Annotated[str, Query(max_length=128, pattern=r"^[A-Za-z0-9_\-]*$")] = "",
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> CommentsOut:
    """``commit`` or ``merge_request`` (id or number) narrows the list; with neither, every comment of the
    repository. Anchored threads carry stem, start_s, end_s."""
    reply = await state.backends.vcs.ListComments(
        vcs_pb2.ListCommentsRequest(
            actor=user.user_id,
            repo_id=repo_id,
            commit_id=commit,
            merge_request_id=merge_request,
            page_size=page_size,
            page_token=page_token,
        ),
        timeout=state.timeout,
    )
    return CommentsOut(comments=[_comment(c) for c in reply.comments], next_page_token=reply.next_page_token or None)


@router.post("/comments/{repo_id}", status_code=201, responses=_ERRORS, summary="Comment (or reply) on a commit")
async def add_comment(repo_id: RepoId, body: CommentCreate, state: State, user: User) -> CommentOut:
    """Any reader may comment. A thread may be anchored to a stem and a time range within its duration."""
    request = vcs_pb2.AddCommentRequest(
        actor=user.user_id,
        repo_id=repo_id,
        commit_id=body.commit_id or "",
        merge_request_id=body.merge_request or "",
        parent_id=body.parent_id or "",
        body=body.body,
        stem=body.stem or "",
    )
    if body.start_s is not None and body.end_s is not None:
        request.start_s, request.end_s = body.start_s, body.end_s
    return _comment(await state.backends.vcs.AddComment(request, timeout=state.timeout))


@router.patch("/comments/{repo_id}/{comment_id}", responses=_ERRORS, summary="Edit one's own comment")
async def edit_comment(
    repo_id: RepoId, comment_id: CommentId, body: CommentEdit, state: State, user: User
) -> CommentOut:
    reply = await state.backends.vcs.EditComment(
        vcs_pb2.EditCommentRequest(actor=user.user_id, repo_id=repo_id, comment_id=comment_id, body=body.body),
        timeout=state.timeout,
    )
    return _comment(reply)


@router.delete(
    "/comments/{repo_id}/{comment_id}", responses=_ERRORS, summary="Delete a comment (author or repository owner)"
)
async def delete_comment(repo_id: RepoId, comment_id: CommentId, state: State, user: User) -> CommentOut:
    """The comment is blanked and keeps its place in the thread."""
    reply = await state.backends.vcs.DeleteComment(
        vcs_pb2.DeleteCommentRequest(actor=user.user_id, repo_id=repo_id, comment_id=comment_id),
        timeout=state.timeout,
    )
    return _comment(reply)


@router.post(
    "/comments/{repo_id}/{comment_id}/resolve",
    responses=_ERRORS,
    summary="Resolve or unresolve a thread (its author, the request's author, or a writer)",
)
async def resolve_comment(
    repo_id: RepoId, comment_id: CommentId, body: CommentResolve, state: State, user: User
) -> CommentOut:
    reply = await state.backends.vcs.ResolveComment(
        vcs_pb2.ResolveCommentRequest(
            actor=user.user_id, repo_id=repo_id, comment_id=comment_id, resolved=body.resolved
        ),
        timeout=state.timeout,
    )
    return _comment(reply)


# --- merge requests -----------------------------------------------------------------------------


@router.get("/merge-requests/{repo_id}", responses=_ERRORS, summary="Merge requests into a repository, newest first")
async def list_merge_requests(
    repo_id: RepoId,
    state: State,
    user: User,
    status: Annotated[State_ | None, Query(description="Only requests in this state")] = None,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> MergeRequestsOut:
    reply = await state.backends.vcs.ListMergeRequests(
        vcs_pb2.ListMergeRequestsRequest(
            actor=user.user_id, repo_id=repo_id, state=status or "", page_size=page_size, page_token=page_token
        ),
        timeout=state.timeout,
    )
    return MergeRequestsOut(
        merge_requests=[_request(m) for m in reply.merge_requests], next_page_token=reply.next_page_token or None
    )


@router.post(
    "/merge-requests/{repo_id}",
    status_code=201,
    responses={**_ERRORS, 409: {"description": "An open request already proposes this branch, or nothing to merge"}},
    summary="Propose merging a branch (possibly of a fork) into a branch of this repository",
)
async def open_merge_request(repo_id: RepoId, body: MergeRequestCreate, state: State, user: User) -> MergeRequestOut:
    """Any reader of both repositories may propose; the answer includes conflicts and stem changes."""
    reply = await state.backends.vcs.OpenMergeRequest(
        vcs_pb2.OpenMergeRequestRequest(
            actor=user.user_id,
            repo_id=repo_id,
            target_branch=body.target_branch or "",
            source_repo_id=body.source_repo_id or "",
            source_branch=body.source_branch,
            title=body.title,
            description=body.description,
        ),
        timeout=state.timeout,
    )
    return _view(reply)


@router.get(
    "/merge-requests/{repo_id}/{merge_request}",
    responses=_ERRORS,
    summary="A merge request with its reviews and its evaluation at the current heads",
)
async def get_merge_request(
    repo_id: RepoId, merge_request: MergeRequestRef, state: State, user: User
) -> MergeRequestOut:
    reply = await state.backends.vcs.GetMergeRequest(
        vcs_pb2.GetMergeRequestRequest(actor=user.user_id, repo_id=repo_id, merge_request=merge_request),
        timeout=state.timeout,
    )
    return _view(reply)


@router.post(
    "/merge-requests/{repo_id}/{merge_request}/reviews",
    responses={**_ERRORS, 409: {"description": "The request is not open"}},
    summary="Approve, request changes, or comment (readers may review; not the author's own request)",
)
async def review_merge_request(
    repo_id: RepoId, merge_request: MergeRequestRef, body: ReviewCreate, state: State, user: User
) -> MergeRequestOut:
    reply = await state.backends.vcs.ReviewMergeRequest(
        vcs_pb2.ReviewMergeRequestRequest(
            actor=user.user_id, repo_id=repo_id, merge_request=merge_request, verdict=body.verdict, body=body.body
        ),
        timeout=state.timeout,
    )
    return _view(reply)


@router.post(
    "/merge-requests/{repo_id}/{merge_request}/state",
    responses={**_ERRORS, 409: {"description": "The request is merged"}},
    summary="Close or reopen a request (its author or a writer)",
)
async def set_merge_request_state(
    repo_id: RepoId, merge_request: MergeRequestRef, body: MergeRequestStateChange, state: State, user: User
) -> MergeRequestOut:
    reply = await state.backends.vcs.SetMergeRequestState(
        vcs_pb2.SetMergeRequestStateRequest(
            actor=user.user_id, repo_id=repo_id, merge_request=merge_request, state=body.state
        ),
        timeout=state.timeout,
    )
    return _view(reply)


@router.post(
    "/merge-requests/{repo_id}/{merge_request}/refresh",
    responses=_ERRORS,
    summary="Re-evaluate at the current heads (marks the request merged if the target already has it)",
)
async def refresh_merge_request(
    repo_id: RepoId, merge_request: MergeRequestRef, state: State, user: User
) -> MergeRequestOut:
    reply = await state.backends.vcs.RefreshMergeRequest(
        vcs_pb2.GetMergeRequestRequest(actor=user.user_id, repo_id=repo_id, merge_request=merge_request),
        timeout=state.timeout,
    )
    return _view(reply)


@router.post(
    "/merge-requests/{repo_id}/{merge_request}/merge",
    responses={
        **_ERRORS,
        409: {
            "model": MergeRequestRefusedOut,
            "description": "Conflicts to resolve per stem, or a head moved and the request was re-evaluated "
            "(stale: look at it again and merge again), or the request is not open",
        },
    },
    summary="Merge the request as reviewed (a writer of the target): a merge commit naming the request",
)
async def merge_merge_request(
    repo_id: RepoId, merge_request: MergeRequestRef, body: MergeRequestMerge, state: State, user: User
) -> MergeRequestMergeOut:
    reply = await state.backends.vcs.AcceptMergeRequest(
        vcs_pb2.AcceptMergeRequestRequest(
            actor=user.user_id,
            repo_id=repo_id,
            merge_request=merge_request,
            default_strategy=_STRATEGY[body.strategy],
            stem_strategies={name: _STRATEGY[s] for name, s in body.stem_strategies.items()},
            message=body.message,
        ),
        timeout=state.timeout,
    )
    request = _request(reply.request, reply.evaluation if reply.HasField("evaluation") else None)
    merge = convert.merge(reply.merge) if reply.HasField("merge") else None
    if reply.merged or (merge is not None and merge.up_to_date):
        return MergeRequestMergeOut(merged=reply.merged, stale=False, request=request, merge=merge)
    if reply.stale:
        detail = "a branch moved since the request was evaluated; it was re-evaluated: review it and merge again"
        conflicts = request.evaluation.conflicts if request.evaluation else []
    else:
        conflicts = merge.conflicts if merge else []
        detail = f"{len(conflicts)} stem(s) changed on both sides; resolve with stem_strategies"
    refused = MergeRequestRefusedOut(detail=detail, stale=reply.stale, conflicts=conflicts, request=request)
    return JSONResponse(refused.model_dump(), status_code=409)  # type: ignore[return-value]


# --- activity -----------------------------------------------------------------------------------


@router.get("/activity/{repo_id}", responses=_ERRORS, summary="What happened in a repository, newest first")
async def repository_activity(
    repo_id: RepoId, state: State, user: User, page_size: PageSize = 50, page_token: PageToken = ""
) -> ActivityOut:
    reply = await state.backends.vcs.ListActivity(
        vcs_pb2.ActivityRequest(actor=user.user_id, repo_id=repo_id, page_size=page_size, page_token=page_token),
        timeout=state.timeout,
    )
    return _activity(reply)


@router.get(
    "/whats-new",
    summary="Others' activity in the repositories you own, collaborate on, forked from, or that forked yours",
)
async def whats_new(state: State, user: User, page_size: PageSize = 50, page_token: PageToken = "") -> ActivityOut:
    reply = await state.backends.vcs.WhatsNew(
        vcs_pb2.WhatsNewRequest(actor=user.user_id, page_size=page_size, page_token=page_token),
        timeout=state.timeout,
    )
    return _activity(reply)


# --- perceptual audio diff ----------------------------------------------------------------------

RefParam = Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-/]*$")]


class AudioDiffOut(BaseModel):
    """The stems of both commits and the separator task that compares their audio.

    The task's ``result`` (when ``status`` is ``succeeded``) holds, per stem: ``status``
    (unchanged, gain_only, changed, added, removed), ``regions`` [{start_s, end_s, score}] in the
    head commit's timeline, ``offset_s`` (base time = head time - offset_s), ``gain_db``, ``curve``
    (0..1, one value per ``curve_bin_s`` seconds, for drawing) and ``summary`` (loudness, peak,
    tempo, key and duration of both sides and their deltas). Follow it with
    ``GET /api/ai/tasks/{task_id}/events`` (SSE) or poll ``GET /api/ai/tasks/{task_id}``.
    """

    base: str
    head: str
    base_commit: str
    head_commit: str
    stems: list[schemas.StemChangeOut]
    task: schemas.TaskOut


async def _submit_diff(state: GatewayState, user_id: str, pairs: list[separator_pb2.StemPair]) -> jobs_pb2.Job:
    """The diff task of these pairs for this user (the same pairs give the same task)."""
    digest = hashlib.sha256("|".join(f"{p.name}:{p.from_blob}:{p.to_blob}" for p in pairs).encode()).hexdigest()
    job: jobs_pb2.Job = await state.backends.separator.SubmitAudioDiff(
        separator_pb2.AudioDiffRequest(stems=pairs, owner=user_id, idempotency_key=f"audio-diff:{digest}"),
        timeout=state.timeout,
    )
    return job


@router.get(
    "/audio-diff/{repo_id}",
    status_code=202,
    responses=_ERRORS,
    summary="Where the audio of each stem differs between two refs (a separator task, cached per blob pair)",
)
async def audio_diff(repo_id: RepoId, state: State, user: User, base: RefParam, head: RefParam) -> AudioDiffOut:
    """Asking again for the same pair of commits returns the same task; each stem pair's result is
    cached by the two content hashes, and identical blobs are reported unchanged without decoding."""
    base_commit = await state.backends.vcs.Checkout(
        vcs_pb2.CheckoutRequest(actor=user.user_id, repo_id=repo_id, ref=base), timeout=state.timeout
    )
    head_commit = await state.backends.vcs.Checkout(
        vcs_pb2.CheckoutRequest(actor=user.user_id, repo_id=repo_id, ref=head), timeout=state.timeout
    )
    before = {s.name: s.blob_key for s in base_commit.stems}
    after = {s.name: s.blob_key for s in head_commit.stems}
    names = sorted(before.keys() | after.keys())
    pairs = [separator_pb2.StemPair(name=n, from_blob=before.get(n, ""), to_blob=after.get(n, "")) for n in names]
    if not pairs:
        raise ApiError(400, "neither commit has stems")
    job = await _submit_diff(state, user.user_id, pairs)
    changes = convert.diff(
        vcs_pb2.DiffResponse(
            stems=[
                vcs_pb2.StemChange(
                    name=p.name,
                    kind=(
                        vcs_pb2.CHANGE_KIND_ADDED
                        if not p.from_blob
                        else vcs_pb2.CHANGE_KIND_REMOVED
                        if not p.to_blob
                        else vcs_pb2.CHANGE_KIND_UNCHANGED
                        if p.from_blob == p.to_blob
                        else vcs_pb2.CHANGE_KIND_CHANGED
                    ),
                    base_blob=p.from_blob,
                    head_blob=p.to_blob,
                )
                for p in pairs
            ]
        ),
        base,
        head,
    ).stems
    return AudioDiffOut(
        base=base,
        head=head,
        base_commit=base_commit.id,
        head_commit=head_commit.id,
        stems=changes,
        task=convert.task(job),
    )


class MergeRequestAudioDiffOut(BaseModel):
    """What the request changes (merge base -> proposed head), per stem, and the task comparing the audio."""

    merge_request: MergeRequestOut
    stems: list[schemas.StemChangeOut]
    task: schemas.TaskOut | None = Field(None, description="None when the request changes no stem")


@router.get(
    "/merge-requests/{repo_id}/{merge_request}/audio-diff",
    status_code=202,
    responses={**_ERRORS, 409: {"description": "The request is not open"}},
    summary="The perceptual diff of what a merge request changes (merge base -> proposed head), as a task",
)
async def merge_request_audio_diff(
    repo_id: RepoId, merge_request: MergeRequestRef, state: State, user: User
) -> MergeRequestAudioDiffOut:
    """Works for requests from forks too: the stems come from the request's evaluation, not a checkout."""
    view = await state.backends.vcs.GetMergeRequest(
        vcs_pb2.GetMergeRequestRequest(actor=user.user_id, repo_id=repo_id, merge_request=merge_request),
        timeout=state.timeout,
    )
    request = _view(view)
    if request.evaluation is None:
        raise ApiError(409, f"merge request is {request.state}: nothing to compare")
    changes = request.evaluation.changes
    pairs = [
        separator_pb2.StemPair(name=c.name, from_blob=c.base_blob or "", to_blob=c.head_blob or "") for c in changes
    ]
    task = convert.task(await _submit_diff(state, user.user_id, pairs)) if pairs else None
    return MergeRequestAudioDiffOut(merge_request=request, stems=changes, task=task)
