"""beatflow.v1.Vcs over gRPC: protobuf <-> domain only; the work is in :class:`VcsService`."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from beatflow.common.errors import InvalidArgument
from beatflow.v1 import vcs_pb2, vcs_pb2_grpc
from beatflow.vcs.comments import Anchor, Comment
from beatflow.vcs.feed import Event
from beatflow.vcs.merge_requests import Evaluation, MergeRequest
from beatflow.vcs.model import (
    BlameEntry,
    Collaborator,
    Commit,
    MergeOutcome,
    Metadata,
    Ref,
    Repository,
    Role,
    Stem,
    StemChange,
    StemConflict,
    Strategy,
    User,
    Visibility,
)
from beatflow.vcs.service import VcsService

Ctx: TypeAlias = grpc.aio.ServicerContext


def user_pb(u: User) -> vcs_pb2.User:
    return vcs_pb2.User(id=u.id, username=u.username, created_at=u.created_at)


def repo_pb(r: Repository) -> vcs_pb2.Repository:
    return vcs_pb2.Repository(
        id=r.id,
        owner_id=r.owner_id,
        owner_username=r.owner_username,
        name=r.name,
        description=r.description,
        visibility=int(r.visibility),  # type: ignore[arg-type]
        default_branch=r.default_branch,
        forked_from_id=r.forked_from_id or "",
        created_at=r.created_at,
        role=int(r.role),  # type: ignore[arg-type]
    )


def stem_pb(s: Stem) -> vcs_pb2.Stem:
    return vcs_pb2.Stem(
        name=s.name, blob_key=s.blob_key, content_type=s.content_type, size_bytes=s.size_bytes, duration_s=s.duration_s
    )


def stem_from_pb(s: vcs_pb2.Stem) -> Stem:
    return Stem(s.name, s.blob_key, s.content_type, s.size_bytes, s.duration_s)


def metadata_pb(m: Metadata) -> vcs_pb2.CommitMetadata:
    out = vcs_pb2.CommitMetadata(key=m.key, generation_json=m.generation_json)
    if m.bpm is not None:
        out.bpm = m.bpm
    if m.duration_s is not None:
        out.duration_s = m.duration_s
    if m.sample_rate is not None:
        out.sample_rate = m.sample_rate
    return out


def metadata_from_pb(m: vcs_pb2.CommitMetadata) -> Metadata:
    return Metadata(
        bpm=m.bpm if m.HasField("bpm") else None,
        key=m.key,
        duration_s=m.duration_s if m.HasField("duration_s") else None,
        sample_rate=m.sample_rate if m.HasField("sample_rate") else None,
        generation_json=m.generation_json,
    )


# Commits are immutable: the message of one is built once per repository it is shown in (a history
# page re-read costs copies, not 50 messages built field by field). Callers copy it, never change it.
_COMMIT_PBS: dict[tuple[str, str], vcs_pb2.Commit] = {}
MAX_COMMIT_PBS = 20_000


def commit_pb(c: Commit, repo_id: str = "") -> vcs_pb2.Commit:
    key = (c.id, c.repo_id or repo_id)
    out = _COMMIT_PBS.get(key)
    if out is None:
        if len(_COMMIT_PBS) >= MAX_COMMIT_PBS:
            _COMMIT_PBS.clear()
        out = _COMMIT_PBS[key] = _commit_pb(c, key[1])
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# A commit as one entry of LogResponse.commits on the wire (field key, length, serialized Commit),
# serialized once per commit and repository: a page is then one parse of the joined entries instead
# of 50 messages copied into the response. Bytes are immutable, so no answer can change another's.
_LOG_COMMITS_KEY = _varint(vcs_pb2.LogResponse.DESCRIPTOR.fields_by_name["commits"].number << 3 | 2)
_COMMIT_ENTRIES: dict[tuple[str, str], bytes] = {}


def _log_entry(c: Commit) -> bytes:
    key = (c.id, c.repo_id)
    out = _COMMIT_ENTRIES.get(key)
    if out is None:
        if len(_COMMIT_ENTRIES) >= MAX_COMMIT_PBS:
            _COMMIT_ENTRIES.clear()
        data = commit_pb(c).SerializeToString()
        out = _COMMIT_ENTRIES[key] = _LOG_COMMITS_KEY + _varint(len(data)) + data
    return out


_LOG_TOKEN_KEY = _varint(vcs_pb2.LogResponse.DESCRIPTOR.fields_by_name["next_page_token"].number << 3 | 2)


def log_response_bytes(commits: list[Commit], token: str) -> bytes:
    """A page's LogResponse as serialized bytes: each commit's entry serialized once (see
    ``_log_entry``) joined, then the token; fields in number order, as ``SerializeToString`` writes
    them. The server answers Log with these bytes as they are (``server.add_vcs``): a page is not
    parsed into a message only for gRPC to serialize it again."""
    entries = [_log_entry(c) for c in commits]
    if token:
        data = token.encode()
        entries.append(_LOG_TOKEN_KEY + _varint(len(data)) + data)
    return b"".join(entries)


def log_response(commits: list[Commit], token: str) -> vcs_pb2.LogResponse:
    """The LogResponse for a page as a message (one parse of ``log_response_bytes``)."""
    out: vcs_pb2.LogResponse = vcs_pb2.LogResponse.FromString(log_response_bytes(commits, token))
    return out


def _commit_pb(c: Commit, repo_id: str) -> vcs_pb2.Commit:
    return vcs_pb2.Commit(
        id=c.id,
        repo_id=repo_id,
        parent_ids=list(c.parent_ids),
        author_id=c.author_id,
        author_username=c.author_username,
        message=c.message,
        timestamp=c.timestamp,
        stems=[stem_pb(s) for s in c.stems],
        mixdown_blob=c.mixdown_blob,
        metadata=metadata_pb(c.metadata),
    )


def ref_pb(r: Ref) -> vcs_pb2.Ref:
    return vcs_pb2.Ref(name=r.name, commit_id=r.commit_id, is_tag=r.is_tag, message=r.message)


def collaborator_pb(c: Collaborator) -> vcs_pb2.Collaborator:
    return vcs_pb2.Collaborator(user_id=c.user_id, username=c.username, role=int(c.role))  # type: ignore[arg-type]


def blame_pb(e: BlameEntry) -> vcs_pb2.BlameEntry:
    return vcs_pb2.BlameEntry(stem=e.stem, blob_key=e.blob_key, commit=commit_pb(e.commit))


def comment_pb(c: Comment) -> vcs_pb2.Comment:
    out = vcs_pb2.Comment(
        id=c.id,
        repo_id=c.repo_id,
        commit_id=c.commit_id,
        merge_request_id=c.merge_request_id,
        parent_id=c.parent_id,
        author_id=c.author_id,
        author_username=c.author_username,
        body=c.body,
        stem=c.stem,
        resolved=c.resolved,
        resolved_by=c.resolved_by,
        deleted=c.deleted,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )
    if c.start_s is not None:
        out.start_s = c.start_s
    if c.end_s is not None:
        out.end_s = c.end_s
    return out


def merge_request_pb(m: MergeRequest) -> vcs_pb2.MergeRequestInfo:
    return vcs_pb2.MergeRequestInfo(
        id=m.id,
        number=m.number,
        target_repo_id=m.target_repo_id,
        target_branch=m.target_branch,
        source_repo_id=m.source_repo_id,
        source_branch=m.source_branch,
        author_id=m.author_id,
        author_username=m.author_username,
        title=m.title,
        description=m.description,
        state=m.state,
        source_head=m.source_head,
        target_head=m.target_head,
        conflicts=list(m.conflicts),
        merge_commit_id=m.merge_commit_id,
        merged_by=m.merged_by,
        version=m.version,
        created_at=m.created_at,
        updated_at=m.updated_at,
        reviews=[
            vcs_pb2.Review(
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
    )


def conflict_pb(c: StemConflict) -> vcs_pb2.StemConflict:
    return vcs_pb2.StemConflict(name=c.name, base_blob=c.base_blob, ours_blob=c.ours_blob, theirs_blob=c.theirs_blob)


def change_pb(s: StemChange) -> vcs_pb2.StemChange:
    return vcs_pb2.StemChange(name=s.name, kind=int(s.kind), base_blob=s.base_blob, head_blob=s.head_blob)  # type: ignore[arg-type]


def evaluation_pb(e: Evaluation) -> vcs_pb2.MergeRequestEvaluation:
    return vcs_pb2.MergeRequestEvaluation(
        source_head=e.source_head,
        target_head=e.target_head,
        merge_bases=e.merge_bases,
        up_to_date=e.up_to_date,
        conflicts=[conflict_pb(c) for c in e.conflicts],
        changes=[change_pb(c) for c in e.changes],
    )


def view_pb(m: MergeRequest, e: Evaluation | None = None) -> vcs_pb2.MergeRequestView:
    out = vcs_pb2.MergeRequestView(request=merge_request_pb(m))
    if e is not None:
        out.evaluation.CopyFrom(evaluation_pb(e))
    return out


def merge_response_pb(out: MergeOutcome, repo_id: str) -> vcs_pb2.MergeResponse:
    resp = vcs_pb2.MergeResponse(
        merged=out.merged,
        fast_forward=out.fast_forward,
        up_to_date=out.up_to_date,
        conflicts=[conflict_pb(c) for c in out.conflicts],
        merge_bases=out.merge_bases,
        dry_run=out.dry_run,
    )
    if out.commit is not None:
        resp.commit.CopyFrom(commit_pb(out.commit, repo_id))
    return resp


def event_pb(e: Event) -> vcs_pb2.ActivityEvent:
    return vcs_pb2.ActivityEvent(
        seq=e.seq,
        repo_id=e.repo_id,
        repo_owner=e.repo_owner,
        repo_name=e.repo_name,
        actor_id=e.actor_id,
        actor_username=e.actor_username,
        kind=e.kind,
        ref_name=e.ref_name,
        commit_id=e.commit_id,
        old_commit_id=e.old_commit_id,
        comment_id=e.comment_id,
        merge_request_id=e.merge_request_id,
        summary=e.summary,
        created_at=e.created_at,
    )


def _visibility(v: int) -> Visibility | None:
    return Visibility(v) if v in (1, 2) else None


def _strategy(v: int) -> Strategy:
    return Strategy(v) if v in (0, 1, 2) else Strategy.CONFLICT


class VcsServicer(vcs_pb2_grpc.VcsServicer):
    def __init__(self, service: VcsService) -> None:
        self.svc = service

    async def CreateUser(self, request: vcs_pb2.CreateUserRequest, context: Ctx) -> vcs_pb2.User:
        return user_pb(await self.svc.create_user(request.username, request.password_hash))

    async def GetUserCredentials(self, request: vcs_pb2.GetUserRequest, context: Ctx) -> vcs_pb2.UserCredentials:
        user, hashed = await self.svc.get_credentials(request.user_id, request.username)
        return vcs_pb2.UserCredentials(user=user_pb(user), password_hash=hashed)

    async def CreateRepository(self, request: vcs_pb2.CreateRepositoryRequest, context: Ctx) -> vcs_pb2.Repository:
        repo = await self.svc.create_repository(
            request.actor,
            request.name,
            request.description,
            _visibility(request.visibility) or Visibility.PRIVATE,
            request.default_branch or "main",
        )
        return repo_pb(repo)

    async def GetRepository(self, request: vcs_pb2.GetRepositoryRequest, context: Ctx) -> vcs_pb2.Repository:
        return repo_pb(await self.svc.get_repository(request.actor, request.repo_id))

    async def ListRepositories(
        self, request: vcs_pb2.ListRepositoriesRequest, context: Ctx
    ) -> vcs_pb2.ListRepositoriesResponse:
        repos, token = await self.svc.list_repositories(request.actor, request.page_size, request.page_token)
        return vcs_pb2.ListRepositoriesResponse(repositories=[repo_pb(r) for r in repos], next_page_token=token)

    async def DeleteRepository(self, request: vcs_pb2.DeleteRepositoryRequest, context: Ctx) -> vcs_pb2.Repository:
        return repo_pb(await self.svc.delete_repository(request.actor, request.repo_id))

    async def UpdateRepository(self, request: vcs_pb2.UpdateRepositoryRequest, context: Ctx) -> vcs_pb2.Repository:
        repo = await self.svc.update_repository(
            request.actor,
            request.repo_id,
            name=request.name if request.HasField("name") else None,
            description=request.description if request.HasField("description") else None,
            visibility=_visibility(request.visibility),
            default_branch=request.default_branch if request.HasField("default_branch") else None,
        )
        return repo_pb(repo)

    async def SetCollaborator(self, request: vcs_pb2.SetCollaboratorRequest, context: Ctx) -> vcs_pb2.Collaborator:
        if request.role not in (0, 1, 2, 3):  # an unknown role must not read as NONE (= remove the collaborator)
            raise InvalidArgument(f"unknown role {request.role}")
        role = Role(request.role)
        return collaborator_pb(await self.svc.set_collaborator(request.actor, request.repo_id, request.username, role))

    async def ListCollaborators(
        self, request: vcs_pb2.ListCollaboratorsRequest, context: Ctx
    ) -> vcs_pb2.ListCollaboratorsResponse:
        found = await self.svc.list_collaborators(request.actor, request.repo_id)
        return vcs_pb2.ListCollaboratorsResponse(collaborators=[collaborator_pb(c) for c in found])

    async def CreateCommit(self, request: vcs_pb2.CreateCommitRequest, context: Ctx) -> vcs_pb2.Commit:
        commit = await self.svc.create_commit(
            request.actor,
            request.repo_id,
            branch=request.branch,
            expected_head=request.expected_head,
            message=request.message,
            stems=[stem_from_pb(s) for s in request.stems],
            mixdown_blob=request.mixdown_blob,
            metadata=metadata_from_pb(request.metadata),
            extra_parent_ids=list(request.extra_parent_ids),
            inherit_stems=request.inherit_stems,
            remove_stems=list(request.remove_stems),
            resolve_head=request.resolve_head,
            orphan=request.orphan,
            inherit_metadata=request.inherit_metadata,
            owned_blobs=list(request.owned_blobs),
            require_readable=request.require_readable,
        )
        return commit_pb(commit)

    async def GetCommit(self, request: vcs_pb2.GetCommitRequest, context: Ctx) -> vcs_pb2.Commit:
        return commit_pb(await self.svc.get_commit(request.actor, request.commit_id, request.repo_id))

    async def Checkout(self, request: vcs_pb2.CheckoutRequest, context: Ctx) -> vcs_pb2.Commit:
        return commit_pb(await self.svc.checkout(request.actor, request.repo_id, request.ref))

    async def CreateBranch(self, request: vcs_pb2.CreateBranchRequest, context: Ctx) -> vcs_pb2.Ref:
        return ref_pb(await self.svc.create_branch(request.actor, request.repo_id, request.name, request.from_ref))

    async def DeleteBranch(self, request: vcs_pb2.DeleteBranchRequest, context: Ctx) -> vcs_pb2.Ref:
        return ref_pb(await self.svc.delete_branch(request.actor, request.repo_id, request.name))

    async def RenameBranch(self, request: vcs_pb2.RenameBranchRequest, context: Ctx) -> vcs_pb2.Ref:
        return ref_pb(await self.svc.rename_branch(request.actor, request.repo_id, request.name, request.new_name))

    async def ListRefs(self, request: vcs_pb2.ListRefsRequest, context: Ctx) -> vcs_pb2.ListRefsResponse:
        return vcs_pb2.ListRefsResponse(
            refs=[ref_pb(r) for r in await self.svc.list_refs(request.actor, request.repo_id)]
        )

    async def CreateTag(self, request: vcs_pb2.CreateTagRequest, context: Ctx) -> vcs_pb2.Ref:
        ref = await self.svc.create_tag(request.actor, request.repo_id, request.name, request.target, request.message)
        return ref_pb(ref)

    async def DeleteTag(self, request: vcs_pb2.DeleteTagRequest, context: Ctx) -> vcs_pb2.Ref:
        return ref_pb(await self.svc.delete_tag(request.actor, request.repo_id, request.name))

    async def Log(self, request: vcs_pb2.LogRequest, context: Ctx) -> vcs_pb2.LogResponse:
        out: vcs_pb2.LogResponse = vcs_pb2.LogResponse.FromString(await self.log_bytes(request, context))
        return out

    async def log_bytes(self, request: vcs_pb2.LogRequest, context: Ctx) -> bytes:
        """Log's answer already serialized: what the server sends for Log (``server.add_vcs``)."""
        commits, token = await self.svc.log(
            request.actor,
            request.repo_id,
            request.ref,
            first_parent=request.first_parent,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return log_response_bytes(commits, token)

    async def GetCommitGraph(self, request: vcs_pb2.CommitGraphRequest, context: Ctx) -> vcs_pb2.CommitGraph:
        nodes, edges, refs = await self.svc.commit_graph(request.actor, request.repo_id, request.limit)
        return vcs_pb2.CommitGraph(
            nodes=[commit_pb(c) for c in nodes],
            edges=[vcs_pb2.GraphEdge(child=c, parent=p) for c, p in edges],
            refs=[ref_pb(r) for r in refs],
        )

    async def IsAncestor(self, request: vcs_pb2.IsAncestorRequest, context: Ctx) -> vcs_pb2.IsAncestorResponse:
        found = await self.svc.is_ancestor(request.actor, request.repo_id, request.ancestor, request.descendant)
        return vcs_pb2.IsAncestorResponse(is_ancestor=found)

    async def Fork(self, request: vcs_pb2.ForkRequest, context: Ctx) -> vcs_pb2.Repository:
        repo = await self.svc.fork(request.actor, request.repo_id, request.name, _visibility(request.visibility))
        return repo_pb(repo)

    async def Diff(self, request: vcs_pb2.DiffRequest, context: Ctx) -> vcs_pb2.DiffResponse:
        d = await self.svc.diff(request.actor, request.repo_id, request.base, request.head)
        return vcs_pb2.DiffResponse(
            stems=[
                vcs_pb2.StemChange(name=s.name, kind=int(s.kind), base_blob=s.base_blob, head_blob=s.head_blob)  # type: ignore[arg-type]
                for s in d.stems
            ],
            metadata=[
                vcs_pb2.MetadataChange(field=m.field, base_value=m.base_value, head_value=m.head_value)
                for m in d.metadata
            ],
        )

    async def MergeBase(self, request: vcs_pb2.MergeBaseRequest, context: Ctx) -> vcs_pb2.MergeBaseResponse:
        bases = await self.svc.merge_base(request.actor, request.repo_id, request.a, request.b)
        return vcs_pb2.MergeBaseResponse(merge_bases=bases)

    async def Merge(self, request: vcs_pb2.MergeRequest, context: Ctx) -> vcs_pb2.MergeResponse:
        out = await self.svc.merge(
            request.actor,
            request.repo_id,
            into_branch=request.into_branch,
            from_ref=request.from_ref,
            expected_head=request.expected_head,
            message=request.message,
            default_strategy=_strategy(request.default_strategy),
            stem_strategies={k: _strategy(v) for k, v in request.stem_strategies.items()},
            no_fast_forward=request.no_fast_forward,
            dry_run=request.dry_run,
        )
        resp = vcs_pb2.MergeResponse(
            merged=out.merged,
            fast_forward=out.fast_forward,
            up_to_date=out.up_to_date,
            conflicts=[
                vcs_pb2.StemConflict(
                    name=c.name, base_blob=c.base_blob, ours_blob=c.ours_blob, theirs_blob=c.theirs_blob
                )
                for c in out.conflicts
            ],
            merge_bases=out.merge_bases,
            dry_run=out.dry_run,
        )
        if out.commit is not None:
            resp.commit.CopyFrom(commit_pb(out.commit, request.repo_id))
        return resp

    async def Revert(self, request: vcs_pb2.RevertRequest, context: Ctx) -> vcs_pb2.Commit:
        commit = await self.svc.revert(
            request.actor,
            request.repo_id,
            branch=request.branch,
            commit_id=request.commit_id,
            expected_head=request.expected_head,
            message=request.message,
        )
        return commit_pb(commit)

    async def Blame(self, request: vcs_pb2.BlameRequest, context: Ctx) -> vcs_pb2.BlameResponse:
        entries = await self.svc.blame(request.actor, request.repo_id, request.ref)
        return vcs_pb2.BlameResponse(entries=[blame_pb(e) for e in entries])

    async def RegisterBlob(self, request: vcs_pb2.RegisterBlobRequest, context: Ctx) -> vcs_pb2.RegisterBlobResponse:
        await self.svc.register_blob(request.actor, request.blob_key, request.content_type, request.size_bytes)
        return vcs_pb2.RegisterBlobResponse()

    async def CanReadBlob(self, request: vcs_pb2.CanReadBlobRequest, context: Ctx) -> vcs_pb2.CanReadBlobResponse:
        return vcs_pb2.CanReadBlobResponse(allowed=await self.svc.can_read_blob(request.actor, request.blob_key))

    async def GarbageCollect(
        self, request: vcs_pb2.GarbageCollectRequest, context: Ctx
    ) -> vcs_pb2.GarbageCollectResponse:
        candidates: dict[str, float | None] = {k: None for k in request.candidate_blobs}
        for c in request.candidates:
            candidates[c.key] = c.created_at if c.created_at > 0 else None
        result = await self.svc.garbage_collect(candidates, request.grace_period_s, request.dry_run)
        return vcs_pb2.GarbageCollectResponse(
            deletable_blobs=result.deletable,
            referenced=result.referenced,
            deleted=result.deleted,
            kept_young=result.kept_young,
        )

    # review
    async def AddComment(self, request: vcs_pb2.AddCommentRequest, context: Ctx) -> vcs_pb2.Comment:
        anchor = None
        if request.stem:
            anchor = Anchor(
                request.stem,
                request.start_s if request.HasField("start_s") else None,
                request.end_s if request.HasField("end_s") else None,
            )
        elif request.HasField("start_s") or request.HasField("end_s"):
            raise InvalidArgument("a time range needs a stem")
        c = await self.svc.add_comment(
            request.actor,
            request.repo_id,
            body=request.body,
            commit_id=request.commit_id,
            merge_request_id=request.merge_request_id,
            parent_id=request.parent_id,
            anchor=anchor,
        )
        return comment_pb(c)

    async def ListComments(self, request: vcs_pb2.ListCommentsRequest, context: Ctx) -> vcs_pb2.ListCommentsResponse:
        items, token = await self.svc.list_comments(
            request.actor,
            request.repo_id,
            commit_id=request.commit_id,
            merge_request_id=request.merge_request_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return vcs_pb2.ListCommentsResponse(comments=[comment_pb(c) for c in items], next_page_token=token)

    async def EditComment(self, request: vcs_pb2.EditCommentRequest, context: Ctx) -> vcs_pb2.Comment:
        return comment_pb(await self.svc.edit_comment(request.actor, request.repo_id, request.comment_id, request.body))

    async def DeleteComment(self, request: vcs_pb2.DeleteCommentRequest, context: Ctx) -> vcs_pb2.Comment:
        return comment_pb(await self.svc.delete_comment(request.actor, request.repo_id, request.comment_id))

    async def ResolveComment(self, request: vcs_pb2.ResolveCommentRequest, context: Ctx) -> vcs_pb2.Comment:
        c = await self.svc.resolve_comment(request.actor, request.repo_id, request.comment_id, request.resolved)
        return comment_pb(c)

    async def OpenMergeRequest(
        self, request: vcs_pb2.OpenMergeRequestRequest, context: Ctx
    ) -> vcs_pb2.MergeRequestView:
        mr = await self.svc.open_merge_request(
            request.actor,
            request.repo_id,
            target_branch=request.target_branch,
            source_repo_id=request.source_repo_id,
            source_branch=request.source_branch,
            title=request.title,
            description=request.description,
        )
        return view_pb(*(await self.svc.get_merge_request(request.actor, request.repo_id, mr.id)))

    async def GetMergeRequest(self, request: vcs_pb2.GetMergeRequestRequest, context: Ctx) -> vcs_pb2.MergeRequestView:
        return view_pb(*(await self.svc.get_merge_request(request.actor, request.repo_id, request.merge_request)))

    async def ListMergeRequests(
        self, request: vcs_pb2.ListMergeRequestsRequest, context: Ctx
    ) -> vcs_pb2.ListMergeRequestsResponse:
        items, token = await self.svc.list_merge_requests(
            request.actor, request.repo_id, request.state, request.page_size, request.page_token
        )
        return vcs_pb2.ListMergeRequestsResponse(
            merge_requests=[merge_request_pb(m) for m in items], next_page_token=token
        )

    async def ReviewMergeRequest(
        self, request: vcs_pb2.ReviewMergeRequestRequest, context: Ctx
    ) -> vcs_pb2.MergeRequestView:
        mr = await self.svc.review_merge_request(
            request.actor, request.repo_id, request.merge_request, request.verdict, request.body
        )
        return view_pb(mr)

    async def SetMergeRequestState(
        self, request: vcs_pb2.SetMergeRequestStateRequest, context: Ctx
    ) -> vcs_pb2.MergeRequestView:
        mr = await self.svc.set_merge_request_state(
            request.actor, request.repo_id, request.merge_request, request.state
        )
        return view_pb(mr)

    async def RefreshMergeRequest(
        self, request: vcs_pb2.GetMergeRequestRequest, context: Ctx
    ) -> vcs_pb2.MergeRequestView:
        mr, ev = await self.svc.refresh_merge_request(request.actor, request.repo_id, request.merge_request)
        return view_pb(mr, ev if mr.state == "open" else None)

    async def AcceptMergeRequest(
        self, request: vcs_pb2.AcceptMergeRequestRequest, context: Ctx
    ) -> vcs_pb2.AcceptMergeRequestResponse:
        out = await self.svc.accept_merge_request(
            request.actor,
            request.repo_id,
            request.merge_request,
            default_strategy=_strategy(request.default_strategy),
            stem_strategies={k: _strategy(v) for k, v in request.stem_strategies.items()},
            message=request.message,
        )
        resp = vcs_pb2.AcceptMergeRequestResponse(
            request=merge_request_pb(out.request), merged=out.merged, stale=out.stale
        )
        if out.merge is not None:
            resp.merge.CopyFrom(merge_response_pb(out.merge, request.repo_id))
        if out.evaluation is not None:
            resp.evaluation.CopyFrom(evaluation_pb(out.evaluation))
        return resp

    async def ListActivity(self, request: vcs_pb2.ActivityRequest, context: Ctx) -> vcs_pb2.ActivityResponse:
        events, token = await self.svc.repository_activity(
            request.actor, request.repo_id, request.page_size, request.page_token
        )
        return vcs_pb2.ActivityResponse(events=[event_pb(e) for e in events], next_page_token=token)

    async def WhatsNew(self, request: vcs_pb2.WhatsNewRequest, context: Ctx) -> vcs_pb2.ActivityResponse:
        events, token = await self.svc.whats_new(request.actor, request.page_size, request.page_token)
        return vcs_pb2.ActivityResponse(events=[event_pb(e) for e in events], next_page_token=token)
