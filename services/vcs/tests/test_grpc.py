"""The real gRPC server: health, a workflow over a grpc.aio channel, and the status code of each error."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from subprocess import PIPE

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beatflow.v1 import vcs_pb2 as pb
from beatflow.v1 import vcs_pb2_grpc
from beatflow.vcs.config import VcsSettings
from beatflow.vcs.server import create_server

KEY = "ab" * 32
KEY2 = "cd" * 32


@pytest.fixture
async def stub(database_url: str, tmp_path: Path) -> AsyncIterator[vcs_pb2_grpc.VcsStub]:
    settings = VcsSettings(
        database_url=database_url, port=0, metrics_port=None, blob_dir=tmp_path / "blobs", db_pool_size=2
    )
    gs, port = await create_server(settings)
    await gs.start()
    await gs.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        resp = await health.Check(health_pb2.HealthCheckRequest(service="beatflow.v1.Vcs"))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        yield vcs_pb2_grpc.VcsStub(channel)
    await gs.stop(0)


async def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_workflow_and_status_codes(stub) -> None:
    alice = await stub.CreateUser(pb.CreateUserRequest(username="alice", password_hash="h1"))
    bob = await stub.CreateUser(pb.CreateUserRequest(username="bob", password_hash="h2"))
    creds = await stub.GetUserCredentials(pb.GetUserRequest(username="alice"))
    assert creds.user.id == alice.id and creds.password_hash == "h1"
    repo = await stub.CreateRepository(pb.CreateRepositoryRequest(actor=alice.id, name="beat"))
    assert repo.visibility == pb.VISIBILITY_PRIVATE and repo.default_branch == "main" and repo.role == pb.ROLE_OWNER
    meta = pb.CommitMetadata(bpm=92.5, key="F minor", sample_rate=32000, generation_json='{"seed": 1}')
    c1 = await stub.CreateCommit(
        pb.CreateCommitRequest(
            actor=alice.id,
            repo_id=repo.id,
            message="first",
            stems=[pb.Stem(name="drums", blob_key=KEY, content_type="audio/wav", size_bytes=10, duration_s=2.0)],
            metadata=meta,
        )
    )
    assert c1.metadata.bpm == 92.5 and c1.metadata.HasField("sample_rate") and not c1.metadata.HasField("duration_s")
    c2 = await stub.CreateCommit(
        pb.CreateCommitRequest(
            actor=alice.id,
            repo_id=repo.id,
            expected_head=c1.id,
            message="second",
            stems=[pb.Stem(name="bass", blob_key=KEY2)],
            inherit_stems=True,
        )
    )
    assert sorted(s.name for s in c2.stems) == ["bass", "drums"]
    log = await stub.Log(pb.LogRequest(actor=alice.id, repo_id=repo.id, page_size=1))
    assert [c.id for c in log.commits] == [c2.id] and log.next_page_token
    log2 = await stub.Log(pb.LogRequest(actor=alice.id, repo_id=repo.id, page_size=1, page_token=log.next_page_token))
    assert [c.id for c in log2.commits] == [c1.id] and not log2.next_page_token
    # A page's commits are the whole messages (stems and metadata read from the page's own row).
    assert log2.commits[0] == c1 and log.commits[0] == c2
    graph = await stub.GetCommitGraph(pb.CommitGraphRequest(actor=alice.id, repo_id=repo.id))
    assert len(graph.nodes) == 2 and graph.edges[0].child == c2.id and graph.refs[0].name == "main"
    diff = await stub.Diff(pb.DiffRequest(actor=alice.id, repo_id=repo.id, base=c1.id, head=c2.id))
    assert [(s.name, s.kind) for s in diff.stems] == [
        ("bass", pb.CHANGE_KIND_ADDED),
        ("drums", pb.CHANGE_KIND_UNCHANGED),
    ]
    await stub.CreateBranch(pb.CreateBranchRequest(actor=alice.id, repo_id=repo.id, name="feat", from_ref=c1.id))
    mb = await stub.MergeBase(pb.MergeBaseRequest(actor=alice.id, repo_id=repo.id, a="main", b="feat"))
    assert list(mb.merge_bases) == [c1.id]
    merged = await stub.Merge(pb.MergeRequest(actor=alice.id, repo_id=repo.id, into_branch="feat", from_ref="main"))
    assert merged.merged and merged.fast_forward and merged.commit.id == c2.id
    blame = await stub.Blame(pb.BlameRequest(actor=alice.id, repo_id=repo.id))
    assert {e.stem: e.commit.id for e in blame.entries} == {"drums": c1.id, "bass": c2.id}
    anc = await stub.IsAncestor(pb.IsAncestorRequest(actor=alice.id, repo_id=repo.id, ancestor=c1.id, descendant=c2.id))
    assert anc.is_ancestor
    await stub.RegisterBlob(pb.RegisterBlobRequest(actor=alice.id, blob_key="ef" * 32, content_type="audio/wav"))
    assert (await stub.CanReadBlob(pb.CanReadBlobRequest(actor=alice.id, blob_key="ef" * 32))).allowed
    assert not (await stub.CanReadBlob(pb.CanReadBlobRequest(actor=bob.id, blob_key=KEY))).allowed
    gc = await stub.GarbageCollect(
        pb.GarbageCollectRequest(candidate_blobs=[KEY, "ef" * 32], grace_period_s=3600, dry_run=True)
    )
    assert list(gc.deletable_blobs) == [] and gc.referenced == 1 and gc.kept_young == 1
    upd = await stub.UpdateRepository(pb.UpdateRepositoryRequest(actor=alice.id, repo_id=repo.id, description="d"))
    assert upd.description == "d" and upd.name == "beat" and upd.visibility == pb.VISIBILITY_PRIVATE
    fork = await stub.Fork(pb.ForkRequest(actor=alice.id, repo_id=repo.id, name="beat-2"))
    assert fork.forked_from_id == repo.id

    # Status codes.
    S = grpc.StatusCode
    assert await code_of(stub.GetRepository(pb.GetRepositoryRequest(actor=bob.id, repo_id=repo.id))) == S.NOT_FOUND
    assert await code_of(stub.CreateUser(pb.CreateUserRequest(username="alice"))) == S.ALREADY_EXISTS
    stale = pb.CreateCommitRequest(actor=alice.id, repo_id=repo.id, expected_head=c1.id, message="late")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateCommit(stale)
    assert err.value.code() == S.FAILED_PRECONDITION and c2.id in (err.value.details() or "")
    # The current head also comes as trailing metadata: a writer rebuilds on it without reading the refs.
    assert dict(err.value.trailing_metadata() or ())["beatflow-current-head"] == c2.id
    # So does a merge's (and a revert's) stale refusal.
    stale_merge = pb.MergeRequest(
        actor=alice.id, repo_id=repo.id, into_branch="main", from_ref="feat", expected_head=c1.id
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Merge(stale_merge)
    assert err.value.code() == S.FAILED_PRECONDITION
    assert dict(err.value.trailing_metadata() or ())["beatflow-current-head"] == c2.id
    bad_branch = pb.CreateBranchRequest(actor=alice.id, repo_id=repo.id, name="bad..name")
    assert await code_of(stub.CreateBranch(bad_branch)) == S.INVALID_ARGUMENT
    await stub.SetCollaborator(pb.SetCollaboratorRequest(actor=alice.id, repo_id=repo.id, username="bob", role=1))
    as_reader = pb.CreateCommitRequest(actor=bob.id, repo_id=repo.id, expected_head=c2.id, message="x")
    assert await code_of(stub.CreateCommit(as_reader)) == S.PERMISSION_DENIED
    anon = pb.CreateRepositoryRequest(actor="", name="x")
    assert await code_of(stub.CreateRepository(anon)) == S.UNAUTHENTICATED
    assert (
        await code_of(stub.Log(pb.LogRequest(actor=alice.id, repo_id=repo.id, page_token="!!"))) == S.INVALID_ARGUMENT
    )


async def test_separate_migration_job(database_url: str, tmp_path: Path) -> None:
    """With migrate_on_start off the server waits for the schema; ``python -m beatflow.vcs migrate`` provides it."""
    settings = VcsSettings(
        database_url=database_url, port=0, blob_dir=tmp_path, migrate_on_start=False, schema_wait_s=0.0
    )
    with pytest.raises(RuntimeError, match="migrate"):
        await create_server(settings)
    env = {**os.environ, "BEATFLOW_DATABASE_URL": database_url, "BEATFLOW_LOG_JSON": "false"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "beatflow.vcs", "migrate", env=env, stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    from beatflow.vcs.migrate import head_revision

    assert f"schema at revision {head_revision()}" in stdout.decode()
    gs, _ = await create_server(settings)  # schema at head: ready at once
    await gs.stop(0)


async def test_unknown_collaborator_role_is_refused_not_a_removal(stub) -> None:
    alice = await stub.CreateUser(pb.CreateUserRequest(username="alice", password_hash="h1"))
    await stub.CreateUser(pb.CreateUserRequest(username="bob", password_hash="h2"))
    repo = await stub.CreateRepository(pb.CreateRepositoryRequest(actor=alice.id, name="beat"))
    await stub.SetCollaborator(
        pb.SetCollaboratorRequest(actor=alice.id, repo_id=repo.id, username="bob", role=pb.ROLE_WRITE)
    )
    bad = pb.SetCollaboratorRequest(actor=alice.id, repo_id=repo.id, username="bob", role=7)  # type: ignore[arg-type]
    assert await code_of(stub.SetCollaborator(bad)) == grpc.StatusCode.INVALID_ARGUMENT
    found = await stub.ListCollaborators(pb.ListCollaboratorsRequest(actor=alice.id, repo_id=repo.id))
    assert [(c.username, c.role) for c in found.collaborators] == [("bob", pb.ROLE_WRITE)]


def test_log_response_entries_are_built_once_and_never_shared() -> None:
    from beatflow.vcs.model import Commit, Metadata, Stem
    from beatflow.vcs.servicer import commit_pb, log_response, log_response_bytes

    commits = [
        Commit(
            id=f"{i:064x}",
            parent_ids=(f"{i + 1:064x}",) if i < 2 else (),
            author_id="u1",
            author_username="alice",
            message=f"take {i} " + "x" * 200 * i,  # entries past 127 bytes take a two-byte length
            timestamp=1700000000.5 + i,
            stems=(Stem("drums", KEY, "audio/wav", 10, 2.0), Stem("bass", KEY2, "audio/wav", 1 << 40, 0.5)),
            mixdown_blob=KEY if i else "",
            metadata=Metadata(bpm=92.5 if i else None, key="F minor", duration_s=None, sample_rate=32000),
            repo_id="r1",
        )
        for i in range(3)
    ]
    want = pb.LogResponse(commits=[commit_pb(c) for c in commits], next_page_token="tok")
    first = log_response(commits, "tok")
    assert first == want and not first.commits[0].metadata.HasField("bpm")
    first.commits[1].message = "changed"
    first.commits[1].stems.pop()
    second = log_response(commits, "")
    assert list(second.commits) == list(want.commits) and second.next_page_token == ""
    assert commit_pb(commits[1]).message.startswith("take 1") and len(commit_pb(commits[1]).stems) == 2
    # the bytes the server sends for Log are the message's own serialization, token or none
    assert log_response_bytes(commits, "tok") == want.SerializeToString(deterministic=True)
    want.next_page_token = ""
    assert log_response_bytes(commits, "") == want.SerializeToString(deterministic=True)
    assert log_response_bytes([], "t") == pb.LogResponse(next_page_token="t").SerializeToString()


async def test_log_is_answered_with_the_servicers_serialized_bytes() -> None:
    """add_vcs puts the bytes handler of Log before the generated ones (behind the error interceptor):
    Log's answer is what ``log_bytes`` built, sent as it is; other methods keep the generated handlers."""
    from beatflow.common.grpcserver import ErrorInterceptor
    from beatflow.vcs.server import add_vcs
    from beatflow.vcs.servicer import VcsServicer

    class Servicer(VcsServicer):
        def __init__(self) -> None:  # no service: Log is answered from bytes alone
            pass

        async def log_bytes(self, request: pb.LogRequest, context: object) -> bytes:
            return pb.LogResponse(commits=[pb.Commit(id="c1")], next_page_token=request.repo_id).SerializeToString()

        async def Log(self, request: pb.LogRequest, context: object) -> pb.LogResponse:
            raise AssertionError("the message path answered Log")

    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    add_vcs(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = vcs_pb2_grpc.VcsStub(channel)
            resp = await stub.Log(pb.LogRequest(repo_id="r9"), timeout=10)
            assert [c.id for c in resp.commits] == ["c1"] and resp.next_page_token == "r9"
            assert await code_of(stub.GetCommitGraph(pb.CommitGraphRequest(), timeout=10)) == grpc.StatusCode.INTERNAL
    finally:
        await server.stop(0)
