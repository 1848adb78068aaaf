"""Repositories, their branches, tags and collaborators."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import AfterValidator

from beatflow.gateway import convert, names, schemas
from beatflow.gateway.deps import State, User
from beatflow.v1 import vcs_pb2

router = APIRouter(prefix="/api/repositories", tags=["repositories"])

RepoId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
RefPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$",
        json_schema_extra={"pattern": names.REF_PATTERN},
    ),
    AfterValidator(names.check_ref),
]
Username = Annotated[str, Path(min_length=1, max_length=39, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,38}$")]
_MISSING: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such repository (or not visible to the caller)"},
    403: {"description": "Not allowed"},
}


@router.post("/create", status_code=201, responses={409: {"description": "Name taken"}}, summary="Create a repository")
async def create_repository(body: schemas.RepositoryCreate, state: State, user: User) -> schemas.RepositoryOut:
    repo = await state.backends.vcs.CreateRepository(
        vcs_pb2.CreateRepositoryRequest(
            actor=user.user_id,
            name=body.name,
            description=body.description,
            visibility=convert.visibility(body.visibility),
            default_branch=body.default_branch,
        ),
        timeout=state.timeout,
    )
    return convert.repository(repo)


@router.get("", summary="Repositories the caller can read")
async def list_repositories(
    state: State,
    user: User,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: Annotated[str, Query(max_length=500, pattern=r"^[A-Za-z0-9_\-=]*$")] = "",
) -> schemas.RepositoryList:
    reply = await state.backends.vcs.ListRepositories(
        vcs_pb2.ListRepositoriesRequest(actor=user.user_id, page_size=page_size, page_token=page_token),
        timeout=state.timeout,
    )
    return schemas.RepositoryList(
        repositories=[convert.repository(r) for r in reply.repositories], next_page_token=reply.next_page_token or None
    )


@router.get("/{repo_id}", responses=_MISSING, summary="A repository")
async def get_repository(repo_id: RepoId, state: State, user: User) -> schemas.RepositoryOut:
    repo = await state.backends.vcs.GetRepository(
        vcs_pb2.GetRepositoryRequest(actor=user.user_id, repo_id=repo_id), timeout=state.timeout
    )
    return convert.repository(repo)


@router.delete("/{repo_id}", responses=_MISSING, summary="Delete a repository (owner only)")
async def delete_repository(repo_id: RepoId, state: State, user: User) -> schemas.RepositoryOut:
    repo = await state.backends.vcs.DeleteRepository(
        vcs_pb2.DeleteRepositoryRequest(actor=user.user_id, repo_id=repo_id), timeout=state.timeout
    )
    return convert.repository(repo)


# --- collaborators ---------------------------------------------------------------


@router.get("/{repo_id}/collaborators", responses=_MISSING, summary="Who has access")
async def list_collaborators(repo_id: RepoId, state: State, user: User) -> schemas.CollaboratorList:
    reply = await state.backends.vcs.ListCollaborators(
        vcs_pb2.ListCollaboratorsRequest(actor=user.user_id, repo_id=repo_id), timeout=state.timeout
    )
    return schemas.CollaboratorList(collaborators=[convert.collaborator(c) for c in reply.collaborators])


@router.put("/{repo_id}/collaborators/{username}", responses=_MISSING, summary="Grant a user read or write access")
async def set_collaborator(
    repo_id: RepoId, username: Username, body: schemas.CollaboratorSet, state: State, user: User
) -> schemas.CollaboratorOut:
    reply = await state.backends.vcs.SetCollaborator(
        vcs_pb2.SetCollaboratorRequest(
            actor=user.user_id, repo_id=repo_id, username=username, role=convert.ROLE_VALUE[body.role]
        ),
        timeout=state.timeout,
    )
    return convert.collaborator(reply)


@router.delete("/{repo_id}/collaborators/{username}", status_code=204, responses=_MISSING, summary="Revoke access")
async def remove_collaborator(repo_id: RepoId, username: Username, state: State, user: User) -> Response:
    await state.backends.vcs.SetCollaborator(
        vcs_pb2.SetCollaboratorRequest(
            actor=user.user_id, repo_id=repo_id, username=username, role=vcs_pb2.ROLE_UNSPECIFIED
        ),
        timeout=state.timeout,
    )
    return Response(status_code=204)


# --- branches and tags -------------------------------------------------------------


async def _refs(state: State, user: User, repo_id: str) -> list[vcs_pb2.Ref]:
    reply = await state.backends.vcs.ListRefs(
        vcs_pb2.ListRefsRequest(actor=user.user_id, repo_id=repo_id), timeout=state.timeout
    )
    return list(reply.refs)


@router.get("/{repo_id}/branches", responses=_MISSING, summary="Branches and their heads")
async def list_branches(repo_id: RepoId, state: State, user: User) -> schemas.RefList:
    return schemas.RefList(refs=[convert.ref(r) for r in await _refs(state, user, repo_id) if not r.is_tag])


@router.post("/{repo_id}/branches", status_code=201, responses=_MISSING, summary="Create a branch")
async def create_branch(repo_id: RepoId, body: schemas.BranchCreate, state: State, user: User) -> schemas.RefOut:
    reply = await state.backends.vcs.CreateBranch(
        vcs_pb2.CreateBranchRequest(actor=user.user_id, repo_id=repo_id, name=body.name, from_ref=body.from_ref),
        timeout=state.timeout,
    )
    return convert.ref(reply)


@router.patch("/{repo_id}/branches/{name:path}", responses=_MISSING, summary="Rename a branch")
async def rename_branch(
    repo_id: RepoId, name: RefPath, body: schemas.BranchRename, state: State, user: User
) -> schemas.RefOut:
    reply = await state.backends.vcs.RenameBranch(
        vcs_pb2.RenameBranchRequest(actor=user.user_id, repo_id=repo_id, name=name, new_name=body.new_name),
        timeout=state.timeout,
    )
    return convert.ref(reply)


@router.delete("/{repo_id}/branches/{name:path}", responses=_MISSING, summary="Delete a branch")
async def delete_branch(repo_id: RepoId, name: RefPath, state: State, user: User) -> schemas.RefOut:
    reply = await state.backends.vcs.DeleteBranch(
        vcs_pb2.DeleteBranchRequest(actor=user.user_id, repo_id=repo_id, name=name), timeout=state.timeout
    )
    return convert.ref(reply)


@router.get("/{repo_id}/tags", responses=_MISSING, summary="Tags")
async def list_tags(repo_id: RepoId, state: State, user: User) -> schemas.RefList:
    return schemas.RefList(refs=[convert.ref(r) for r in await _refs(state, user, repo_id) if r.is_tag])


@router.post("/{repo_id}/tags", status_code=201, responses=_MISSING, summary="Tag a commit")
async def create_tag(repo_id: RepoId, body: schemas.TagCreate, state: State, user: User) -> schemas.RefOut:
    reply = await state.backends.vcs.CreateTag(
        vcs_pb2.CreateTagRequest(
            actor=user.user_id, repo_id=repo_id, name=body.name, target=body.target, message=body.message
        ),
        timeout=state.timeout,
    )
    return convert.ref(reply)


@router.delete("/{repo_id}/tags/{name:path}", responses=_MISSING, summary="Delete a tag")
async def delete_tag(repo_id: RepoId, name: RefPath, state: State, user: User) -> schemas.RefOut:
    reply = await state.backends.vcs.DeleteTag(
        vcs_pb2.DeleteTagRequest(actor=user.user_id, repo_id=repo_id, name=name), timeout=state.timeout
    )
    return convert.ref(reply)
