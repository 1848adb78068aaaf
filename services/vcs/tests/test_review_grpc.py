"""Review over the real gRPC server: comments, a merge request from open to merged, activity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from beatflow.v1 import vcs_pb2 as pb
from beatflow.v1 import vcs_pb2_grpc
from beatflow.vcs.config import VcsSettings
from beatflow.vcs.server import create_server


@pytest.fixture
async def stub(database_url: str, tmp_path: Path) -> AsyncIterator[vcs_pb2_grpc.VcsStub]:
    settings = VcsSettings(
        database_url=database_url, port=0, metrics_port=None, blob_dir=tmp_path / "blobs", db_pool_size=2
    )
    gs, port = await create_server(settings)
    await gs.start()
    await gs.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield vcs_pb2_grpc.VcsStub(channel)
    await gs.stop(0)


def _stem(name: str, key: str) -> pb.Stem:
    return pb.Stem(name=name, blob_key=key * 32, content_type="audio/wav", size_bytes=10, duration_s=30.0)


async def test_review_over_grpc(stub) -> None:
    alice = await stub.CreateUser(pb.CreateUserRequest(username="alice", password_hash="h"))
    bob = await stub.CreateUser(pb.CreateUserRequest(username="bob", password_hash="h"))
    repo = await stub.CreateRepository(pb.CreateRepositoryRequest(actor=alice.id, name="beat"))
    c1 = await stub.CreateCommit(
        pb.CreateCommitRequest(actor=alice.id, repo_id=repo.id, message="1", stems=[_stem("drums", "ab")])
    )
    await stub.CreateBranch(pb.CreateBranchRequest(actor=alice.id, repo_id=repo.id, name="idea"))
    await stub.CreateCommit(
        pb.CreateCommitRequest(
            actor=alice.id, repo_id=repo.id, branch="idea", expected_head=c1.id, stems=[_stem("drums", "cd")]
        )
    )
    note = await stub.AddComment(
        pb.AddCommentRequest(
            actor=alice.id, repo_id=repo.id, commit_id=c1.id, body="fill", stem="drums", start_s=12.0, end_s=14.0
        )
    )
    assert note.HasField("start_s") and (note.start_s, note.end_s) == (12.0, 14.0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AddComment(
            pb.AddCommentRequest(
                actor=alice.id, repo_id=repo.id, commit_id=c1.id, body="x", stem="drums", start_s=29.0, end_s=31.0
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:  # bob is a stranger to the private repository
        await stub.ListComments(pb.ListCommentsRequest(actor=bob.id, repo_id=repo.id, commit_id=c1.id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListComments(pb.ListCommentsRequest(actor=alice.id, repo_id=repo.id, commit_id=c1.id))
    assert [c.id for c in listed.comments] == [note.id]

    view = await stub.OpenMergeRequest(
        pb.OpenMergeRequestRequest(actor=alice.id, repo_id=repo.id, source_branch="idea", title="new drums")
    )
    assert view.request.number == 1 and view.evaluation.changes[0].name == "drums"
    out = await stub.AcceptMergeRequest(
        pb.AcceptMergeRequestRequest(actor=alice.id, repo_id=repo.id, merge_request="1")
    )
    assert out.merged and out.request.state == "merged" and len(out.merge.commit.parent_ids) == 2
    feed = await stub.ListActivity(pb.ActivityRequest(actor=alice.id, repo_id=repo.id, page_size=2))
    assert [e.kind for e in feed.events] == ["merge_request_merged", "push"] and feed.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.WhatsNew(pb.WhatsNewRequest(actor=""))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
