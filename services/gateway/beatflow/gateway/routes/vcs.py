"""Version control of stems: commits, history, graph, diff, merge, revert, blame, fork."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

from beatflow.common.jobs import JobKind
from beatflow.gateway import convert, names, schemas
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.deps import GatewayState, State, User
from beatflow.gateway.graphlayout import assign_lanes, topo_order
from beatflow.gateway.routes.ai import require_succeeded
from beatflow.gateway.task_blob_access import CORRUPT_RESPONSE, owned_job, verify_blob
from beatflow.v1 import jobs_pb2, vcs_pb2

router = APIRouter(prefix="/api/vcs", tags=["vcs"])

RepoId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
CommitId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
RefQuery = Annotated[
    str,
    Query(
        max_length=200,
        pattern=r"^[A-Za-z0-9_.\-/]*$",
        description="Branch, tag or commit id; default: the default branch",
        json_schema_extra={"pattern": "^$|" + names.REF_OR_COMMIT_PATTERN},
    ),
    AfterValidator(names.check_ref_or_commit),
]
RequiredRef = Annotated[
    str,
    Query(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.\-/]*$",
        description="Branch, tag or commit id",
        json_schema_extra={"pattern": names.REF_OR_COMMIT_PATTERN},
    ),
    AfterValidator(names.check_ref_or_commit),
]
_MISSING: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such repository, ref or commit (or not visible)"},
    403: {"description": "Not allowed"},
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The branch moved (compare-and-swap failed) or the merge has conflicts"}
}

_STRATEGY = {
    "report": vcs_pb2.MERGE_STRATEGY_UNSPECIFIED,
    "ours": vcs_pb2.MERGE_STRATEGY_OURS,
    "theirs": vcs_pb2.MERGE_STRATEGY_THEIRS,
}


async def _default_branch(state: GatewayState, user: Principal, repo_id: str) -> str:
    repo = await state.backends.vcs.GetRepository(
        vcs_pb2.GetRepositoryRequest(actor=user.user_id, repo_id=repo_id), timeout=state.timeout
    )
    return repo.default_branch or "main"


def _task_stems(job: jobs_pb2.Job) -> dict[str, str]:
    """A finished task's outputs as stems: a generation's audio, audio.1, ... are the mix, mix.1, ..."""
    mix = job.kind == JobKind.GENERATE
    return {
        ("mix" + output.removeprefix("audio") if mix and output.startswith("audio") else output): key
        for output, key in sorted(job.result_blobs.items())
    }


@router.post(
    "/commit/{repo_id}",
    status_code=201,
    responses={**_MISSING, **_CONFLICT, **CORRUPT_RESPONSE},
    summary="Commit a set of stems to a branch",
)
async def create_commit(repo_id: RepoId, body: schemas.CommitCreate, state: State, user: User) -> schemas.CommitOut:
    """One vcs call (two with ``from_task``): vcs resolves the head, checks and describes the blobs."""
    stems = {s.name: s.blob_key for s in body.stems}
    generation_json = json.dumps(body.generation) if body.generation is not None else ""
    if body.from_task:
        job = await owned_job(state, user, body.from_task)
        require_succeeded(job)
        outputs = {name: key for name, key in _task_stems(job).items() if name not in stems}
        stems = {**outputs, **stems}
        if not generation_json and job.result_json and job.kind == JobKind.GENERATE:
            generation_json = job.result_json
    metadata = vcs_pb2.CommitMetadata(key=body.key, generation_json=generation_json)
    if body.bpm is not None:
        metadata.bpm = body.bpm
    if body.duration_s is not None:
        metadata.duration_s = body.duration_s
    if body.sample_rate is not None:
        metadata.sample_rate = body.sample_rate
    # A commit never names audio that fails its hash: every new blob is verified whole first.
    await asyncio.gather(*(verify_blob(state, key) for key in {*stems.values(), *filter(None, [body.mixdown_blob])}))
    reply = await state.backends.vcs.CreateCommit(
        vcs_pb2.CreateCommitRequest(
            actor=user.user_id,
            repo_id=repo_id,
            branch=body.branch or "",
            expected_head=body.parent_commit_id or "",
            resolve_head=True,
            orphan=body.orphan,
            message=body.message,
            stems=[vcs_pb2.Stem(name=name, blob_key=key) for name, key in stems.items()],
            mixdown_blob=body.mixdown_blob or "",
            metadata=metadata,
            inherit_metadata=body.inherit_metadata,
            inherit_stems=body.inherit_stems,
            remove_stems=body.remove_stems,
            require_readable=True,
        ),
        timeout=state.timeout,
    )
    return convert.commit(reply)


@router.get("/commit/{commit_id}", responses=_MISSING, summary="A commit and its stems")
async def get_commit(
    commit_id: CommitId,
    state: State,
    user: User,
    repo_id: Annotated[str, Query(max_length=128, pattern=r"^[A-Za-z0-9_\-]*$")] = "",
) -> schemas.CommitOut:
    reply = await state.backends.vcs.GetCommit(
        vcs_pb2.GetCommitRequest(actor=user.user_id, commit_id=commit_id, repo_id=repo_id), timeout=state.timeout
    )
    return convert.commit(reply)


@router.get("/history/{repo_id}", responses=_MISSING, summary="Commits reachable from a ref, newest first")
async def history(
    repo_id: RepoId,
    state: State,
    user: User,
    ref: RefQuery = "",
    first_parent: bool = False,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: Annotated[str, Query(max_length=500, pattern=r"^[A-Za-z0-9_\-=]*$")] = "",
) -> schemas.CommitList:
    reply = await state.backends.vcs.Log(
        vcs_pb2.LogRequest(
            actor=user.user_id,
            repo_id=repo_id,
            ref=ref,
            first_parent=first_parent,
            page_size=page_size,
            page_token=page_token,
        ),
        timeout=state.timeout,
    )
    return schemas.CommitList(
        commits=[convert.commit(c) for c in reply.commits], next_page_token=reply.next_page_token or None
    )


@router.get("/graph/{repo_id}", responses=_MISSING, summary="The commit graph with rows and lanes for drawing")
async def graph(
    repo_id: RepoId, state: State, user: User, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> schemas.GraphOut:
    reply = await state.backends.vcs.GetCommitGraph(
        vcs_pb2.CommitGraphRequest(actor=user.user_id, repo_id=repo_id, limit=limit), timeout=state.timeout
    )
    parents = {c.id: list(c.parent_ids) for c in reply.nodes}
    for edge in reply.edges:
        if edge.child in parents and edge.parent not in parents[edge.child]:
            parents[edge.child].append(edge.parent)
    order = topo_order(parents, {c.id: c.timestamp for c in reply.nodes})
    lanes, width = assign_lanes(order, parents)
    by_id = {c.id: c for c in reply.nodes}
    return schemas.GraphOut(
        nodes=[
            schemas.GraphNode(commit=convert.commit(by_id[cid]), row=row, lane=lanes[cid])
            for row, cid in enumerate(order)
        ],
        edges=[schemas.GraphEdgeOut(child=child, parent=p) for child in order for p in parents[child] if p in by_id],
        refs=[convert.ref(r) for r in reply.refs],
        lanes=width,
    )


@router.get("/checkout/{repo_id}", responses=_MISSING, summary="The commit a ref points at, with its stems")
async def checkout(repo_id: RepoId, state: State, user: User, ref: RefQuery = "") -> schemas.CommitOut:
    reply = await state.backends.vcs.Checkout(
        vcs_pb2.CheckoutRequest(actor=user.user_id, repo_id=repo_id, ref=ref), timeout=state.timeout
    )
    return convert.commit(reply)


@router.post("/fork", status_code=201, responses=_MISSING, summary="Fork a repository (no audio is copied)")
async def fork(body: schemas.ForkCreate, state: State, user: User) -> schemas.RepositoryOut:
    request = vcs_pb2.ForkRequest(actor=user.user_id, repo_id=body.repo_id, name=body.name or "")
    if body.visibility is not None:
        request.visibility = convert.visibility(body.visibility)
    reply = await state.backends.vcs.Fork(request, timeout=state.timeout)
    return convert.repository(reply)


@router.get("/diff/{repo_id}", responses=_MISSING, summary="Stem and metadata changes between two refs")
async def diff(
    repo_id: RepoId,
    state: State,
    user: User,
    base: RequiredRef,
    head: RequiredRef,
) -> schemas.DiffOut:
    reply = await state.backends.vcs.Diff(
        vcs_pb2.DiffRequest(actor=user.user_id, repo_id=repo_id, base=base, head=head), timeout=state.timeout
    )
    return convert.diff(reply, base, head)


@router.get("/merge-base/{repo_id}", responses=_MISSING, summary="Best common ancestors of two refs")
async def merge_base(
    repo_id: RepoId,
    state: State,
    user: User,
    a: RequiredRef,
    b: RequiredRef,
) -> schemas.MergeBaseOut:
    reply = await state.backends.vcs.MergeBase(
        vcs_pb2.MergeBaseRequest(actor=user.user_id, repo_id=repo_id, a=a, b=b), timeout=state.timeout
    )
    return schemas.MergeBaseOut(merge_bases=list(reply.merge_bases))


@router.post(
    "/merge/{repo_id}",
    responses={**_MISSING, 409: {"model": schemas.MergeConflictOut, "description": "Conflicts (or the branch moved)"}},
    summary="Merge a ref into a branch; conflicts are reported, or settled per stem by strategy",
)
async def merge(repo_id: RepoId, body: schemas.MergeCreate, state: State, user: User) -> schemas.MergeOut:
    into = body.into_branch or await _default_branch(state, user, repo_id)
    reply = await state.backends.vcs.Merge(
        vcs_pb2.MergeRequest(
            actor=user.user_id,
            repo_id=repo_id,
            into_branch=into,
            from_ref=body.from_ref,
            expected_head=body.expected_head or "",
            message=body.message,
            default_strategy=_STRATEGY[body.strategy],
            stem_strategies={name: _STRATEGY[s] for name, s in body.stem_strategies.items()},
            no_fast_forward=body.no_fast_forward,
            dry_run=body.dry_run,
        ),
        timeout=state.timeout,
    )
    result = convert.merge(reply)
    if not result.merged and not result.up_to_date and result.conflicts and not body.dry_run:
        conflict = schemas.MergeConflictOut(
            detail=f"{len(result.conflicts)} stem(s) changed on both sides; resolve with stem_strategies",
            conflicts=result.conflicts,
            merge_bases=result.merge_bases,
        )
        return JSONResponse(conflict.model_dump(), status_code=409)  # type: ignore[return-value]
    return result


@router.post(
    "/revert/{repo_id}", status_code=201, responses={**_MISSING, **_CONFLICT}, summary="Undo a commit with a new one"
)
async def revert(repo_id: RepoId, body: schemas.RevertCreate, state: State, user: User) -> schemas.CommitOut:
    branch = body.branch or await _default_branch(state, user, repo_id)
    reply = await state.backends.vcs.Revert(
        vcs_pb2.RevertRequest(
            actor=user.user_id,
            repo_id=repo_id,
            branch=branch,
            commit_id=body.commit_id,
            expected_head=body.expected_head or "",
            message=body.message,
        ),
        timeout=state.timeout,
    )
    return convert.commit(reply)


@router.get("/blame/{repo_id}", responses=_MISSING, summary="For each stem, the commit that last changed it")
async def blame(repo_id: RepoId, state: State, user: User, ref: RefQuery = "") -> schemas.BlameOut:
    reply = await state.backends.vcs.Blame(
        vcs_pb2.BlameRequest(actor=user.user_id, repo_id=repo_id, ref=ref), timeout=state.timeout
    )
    return schemas.BlameOut(
        entries=[
            schemas.BlameEntryOut(stem=e.stem, blob_key=e.blob_key, commit=convert.commit(e.commit))
            for e in reply.entries
        ]
    )
