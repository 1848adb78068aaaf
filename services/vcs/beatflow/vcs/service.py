"""The version-control operations, one transaction each, with permission checks (used by the servicer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from beatflow.common.errors import FailedPrecondition, InvalidArgument, NotFound
from beatflow.vcs import blobs, comments, commits, db, feed, history, merge_requests, merging, repos, users
from beatflow.vcs.model import (
    BlameEntry,
    Collaborator,
    Commit,
    Diff,
    GcResult,
    MergeOutcome,
    Metadata,
    Ref,
    Repository,
    Role,
    Stem,
    Strategy,
    User,
    Visibility,
)
from beatflow.vcs.names import is_commit_id
from beatflow.vcs.repo_access import READABLE, is_id, load_repo, load_repo_as_user, require_user


@contextmanager
def _data_errors() -> Iterator[None]:
    """A value PostgreSQL cannot store or compare (NUL character, too long: SQLSTATE class 22) is INVALID_ARGUMENT."""
    try:
        yield
    except DBAPIError as exc:
        if not str(getattr(exc.orig, "sqlstate", "") or "").startswith("22"):
            raise
        raise InvalidArgument(f"invalid value: {str(exc.orig).splitlines()[0][:200]}") from None
    except asyncpg.PostgresError as exc:  # from the statements run on asyncpg directly (db.fetch)
        if not str(exc.sqlstate or "").startswith("22"):
            raise
        raise InvalidArgument(f"invalid value: {str(exc).splitlines()[0][:200]}") from None


class VcsService:
    """Git for audio over PostgreSQL.

    ``delete_blob`` removes bytes from the blob store (None: GC only reports); ``probe_blob``
    reads a blob's type, size and duration from the store for stems named by key alone.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        gc_grace_period_s: float = 86400.0,
        delete_blob: Callable[[str], None] | None = None,
        probe_blob: Callable[[str], blobs.BlobAudio | None] | None = None,
    ) -> None:
        self.engine = engine
        # Reads run in autocommit: no BEGIN/COMMIT round trips. Under READ COMMITTED a transaction
        # would give each statement its own snapshot anyway, so nothing is lost.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.gc_grace_period_s = gc_grace_period_s
        self.delete_blob = delete_blob
        self.probe_blob = probe_blob

    @asynccontextmanager
    async def _write(self, actor: str = "") -> AsyncIterator[AsyncConnection]:
        """A transaction (rolled back before a data error becomes INVALID_ARGUMENT).

        ``actor`` names who moves refs in it, for the activity feed (else the commit's author).
        """
        with _data_errors():
            async with self.engine.begin() as conn:
                if actor:
                    await feed.set_actor(conn, actor)
                yield conn

    def _pooled(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled asyncpg connection in autocommit, for a use case of one statement (``db.pooled``)."""
        return db.pooled(self.engine)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        with _data_errors():
            async with self._reader.connect() as conn:
                yield conn

    # users
    async def create_user(self, username: str, password_hash: str) -> User:
        async with self._write() as conn:
            return await users.create_user(conn, username, password_hash)

    async def get_credentials(self, user_id: str = "", username: str = "") -> tuple[User, str]:
        async with self._read() as conn:
            return await users.get_credentials(conn, user_id, username)

    # repositories
    async def create_repository(
        self,
        actor: str,
        name: str,
        description: str = "",
        visibility: Visibility = Visibility.PRIVATE,
        default_branch: str = "main",
    ) -> Repository:
        async with self._write() as conn:
            return await repos.create_repository(conn, actor, name, description, visibility, default_branch)

    async def get_repository(self, actor: str, repo_id: str) -> Repository:
        async with self._read() as conn:
            return await load_repo(conn, repo_id, actor)

    async def list_repositories(
        self, actor: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Repository], str]:
        async with self._read() as conn:
            return await repos.list_repositories(conn, actor, page_size, page_token)

    async def update_repository(
        self,
        actor: str,
        repo_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        visibility: Visibility | None = None,
        default_branch: str | None = None,
    ) -> Repository:
        async with self._write() as conn:
            return await repos.update_repository(
                conn,
                actor,
                repo_id,
                name=name,
                description=description,
                visibility=visibility,
                default_branch=default_branch,
            )

    async def delete_repository(self, actor: str, repo_id: str) -> Repository:
        async with self._write() as conn:
            return await repos.delete_repository(conn, actor, repo_id)

    async def set_collaborator(self, actor: str, repo_id: str, username: str, role: Role) -> Collaborator:
        async with self._write() as conn:
            return await repos.set_collaborator(conn, actor, repo_id, username, role)

    async def list_collaborators(self, actor: str, repo_id: str) -> list[Collaborator]:
        async with self._read() as conn:
            return await repos.list_collaborators(conn, actor, repo_id)

    async def fork(self, actor: str, repo_id: str, name: str = "", visibility: Visibility | None = None) -> Repository:
        async with self._write(actor) as conn:
            return await repos.fork(conn, actor, repo_id, name, visibility)

    # commits
    async def create_commit(
        self,
        actor: str,
        repo_id: str,
        *,
        branch: str = "",
        expected_head: str = "",
        message: str = "",
        stems: Sequence[Stem] = (),
        mixdown_blob: str = "",
        metadata: Metadata | None = None,
        extra_parent_ids: Sequence[str] = (),
        inherit_stems: bool = False,
        remove_stems: Sequence[str] = (),
        resolve_head: bool = False,
        orphan: bool = False,
        inherit_metadata: bool = False,
        owned_blobs: Sequence[str] = (),
        require_readable: bool = False,
    ) -> Commit:
        # A compare-and-swap commit writes in one statement (atomic by itself), so it runs without
        # BEGIN/COMMIT round trips; locking the head (resolve_head) or registering the caller's
        # blobs first needs a transaction around several statements.
        atomic = resolve_head or bool(owned_blobs)
        if not atomic and expected_head and not extra_parent_ids and not require_readable:
            # The usual strict commit onto a parent this process knows: one round trip in all.
            with _data_errors():
                done = await commits.quick_commit(
                    self._pooled,
                    repo_id,
                    actor,
                    branch=branch,
                    expected_head=expected_head,
                    message=message,
                    stems=stems,
                    mixdown_blob=mixdown_blob,
                    metadata=metadata or Metadata(),
                    inherit_stems=inherit_stems,
                    remove_stems=remove_stems,
                    inherit_metadata=inherit_metadata,
                )
            if done is not None:
                return done
        async with self._write() if atomic else self._read() as conn:
            repo, username = await load_repo_as_user(conn, repo_id, actor, Role.WRITE)
            return await commits.create_commit(
                conn,
                repo,
                actor,
                username,
                branch=branch,
                expected_head=expected_head,
                message=message,
                stems=stems,
                mixdown_blob=mixdown_blob,
                metadata=metadata or Metadata(),
                extra_parent_ids=extra_parent_ids,
                inherit_stems=inherit_stems,
                remove_stems=remove_stems,
                resolve_head=resolve_head,
                orphan=orphan,
                inherit_metadata=inherit_metadata,
                owned_blobs=owned_blobs,
                require_readable=require_readable,
                probe=self.probe_blob,
            )

    async def get_commit(self, actor: str, commit_id: str, repo_id: str = "") -> Commit:
        async with self._read() as conn:
            if not repo_id:
                if not is_commit_id(commit_id):
                    raise NotFound(f"commit {commit_id[:80]!r} not found")
                repo_id = (
                    await conn.execute(
                        text(
                            "SELECT r.id FROM commits c JOIN repo_commits rc ON rc.commit_seq = c.seq "
                            "JOIN repositories r ON r.seq = rc.repo_seq "
                            f"WHERE c.id = :c AND {READABLE} LIMIT 1"
                        ),
                        {"c": commit_id, "actor": actor},
                    )
                ).scalar() or ""
                if not repo_id:
                    raise NotFound(f"commit {commit_id} not found")
            repo = await load_repo(conn, repo_id, actor)
            return await commits.get_commit(conn, repo, commit_id)

    async def checkout(self, actor: str, repo_id: str, ref: str = "") -> Commit:
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            cid = await commits.resolve(conn, repo, ref)
            return (await commits.load_commits(conn, [cid], repo.id))[cid]

    # refs
    async def list_refs(self, actor: str, repo_id: str) -> list[Ref]:
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            return await commits.list_refs(conn, repo.id)

    async def create_branch(self, actor: str, repo_id: str, name: str, from_ref: str = "") -> Ref:
        async with self._write(actor) as conn:
            repo = await load_repo(conn, repo_id, actor, Role.WRITE)
            return await commits.create_branch(conn, repo, name, from_ref)

    async def delete_branch(self, actor: str, repo_id: str, name: str) -> Ref:
        async with self._write(actor) as conn:
            repo = await load_repo(conn, repo_id, actor, Role.WRITE)
            return await commits.delete_ref(conn, repo, "branch", name)

    async def rename_branch(self, actor: str, repo_id: str, name: str, new_name: str) -> Ref:
        async with self._write(actor) as conn:
            repo = await load_repo(conn, repo_id, actor, Role.WRITE)
            return await commits.rename_branch(conn, repo, name, new_name)

    async def create_tag(self, actor: str, repo_id: str, name: str, target: str = "", message: str = "") -> Ref:
        async with self._write(actor) as conn:
            repo = await load_repo(conn, repo_id, actor, Role.WRITE)
            return await commits.create_tag(conn, repo, name, target, message)

    async def delete_tag(self, actor: str, repo_id: str, name: str) -> Ref:
        async with self._write(actor) as conn:
            repo = await load_repo(conn, repo_id, actor, Role.WRITE)
            return await commits.delete_ref(conn, repo, "tag", name)

    # history
    async def log(
        self,
        actor: str,
        repo_id: str,
        ref: str = "",
        *,
        first_parent: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[Commit], str]:
        # One statement (access, default branch, page) when it finds the page; else the full path.
        with _data_errors():
            async with self._pooled() as raw:
                page = await history.quick_log(raw, repo_id, actor, ref, first_parent, page_size, page_token)
        if page is not None:
            return page
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            return await history.log(conn, repo, ref, first_parent, page_size, page_token)

    async def commit_graph(
        self, actor: str, repo_id: str, limit: int = 0
    ) -> tuple[list[Commit], list[tuple[str, str]], list[Ref]]:
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            return await history.commit_graph(conn, repo, limit)

    async def is_ancestor(self, actor: str, repo_id: str, ancestor: str, descendant: str) -> bool:
        async with self._read() as conn:
            a, d = await self._resolve(conn, repo_id, actor, [ancestor, descendant])
            return await history.is_ancestor(conn, a, d)

    async def merge_base(self, actor: str, repo_id: str, a: str, b: str) -> list[str]:
        async with self._read() as conn:
            ca, cb = await self._resolve(conn, repo_id, actor, [a, b])
            return await history.merge_bases(conn, ca, cb)

    async def _resolve(self, conn: AsyncConnection, repo_id: str, actor: str, refs: Sequence[str]) -> list[str]:
        """Commit ids of ``refs`` in a repository ``actor`` reads: one statement when all resolve."""
        found = await commits.quick_resolve(conn, repo_id, actor, refs)
        if found is None:
            repo = await load_repo(conn, repo_id, actor)
            found = await commits.resolve_all(conn, repo, refs)
        return found

    async def blame(self, actor: str, repo_id: str, ref: str = "") -> list[BlameEntry]:
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            return await history.blame(conn, repo, ref)

    # diff / merge / revert
    async def diff(self, actor: str, repo_id: str, base: str, head: str) -> Diff:
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            return await merging.diff(conn, repo, base, head)

    async def merge(
        self,
        actor: str,
        repo_id: str,
        *,
        into_branch: str = "",
        from_ref: str,
        expected_head: str = "",
        message: str = "",
        default_strategy: Strategy = Strategy.CONFLICT,
        stem_strategies: Mapping[str, Strategy] | None = None,
        no_fast_forward: bool = False,
        dry_run: bool = False,
    ) -> MergeOutcome:
        async with self._write(actor) as conn:
            repo, username = await load_repo_as_user(conn, repo_id, actor, Role.READ if dry_run else Role.WRITE)
            return await merging.merge(
                conn,
                repo,
                actor,
                username,
                into_branch=into_branch,
                from_ref=from_ref,
                expected_head=expected_head,
                message=message,
                default=default_strategy,
                per_stem=stem_strategies or {},
                no_fast_forward=no_fast_forward,
                dry_run=dry_run,
            )

    async def revert(
        self, actor: str, repo_id: str, *, branch: str = "", commit_id: str, expected_head: str = "", message: str = ""
    ) -> Commit:
        async with self._write(actor) as conn:
            repo, username = await load_repo_as_user(conn, repo_id, actor, Role.WRITE)
            return await merging.revert(
                conn,
                repo,
                actor,
                username,
                branch=branch,
                commit_id=commit_id,
                expected_head=expected_head,
                message=message,
            )

    # blobs
    async def register_blob(self, actor: str, key: str, content_type: str = "", size_bytes: int = 0) -> None:
        async with self._write() as conn:
            await blobs.register_blob(conn, actor, key, content_type, size_bytes)

    async def can_read_blob(self, actor: str, key: str) -> bool:
        async with self._read() as conn:
            return await blobs.can_read_blob(conn, actor, key)

    async def garbage_collect(
        self, candidates: Mapping[str, float | None], grace_period_s: float = 0.0, dry_run: bool = True
    ) -> GcResult:
        grace = grace_period_s if grace_period_s > 0 else self.gc_grace_period_s
        if len(candidates) > 100_000:
            raise InvalidArgument("at most 100000 candidates per call")
        async with self._write() as conn:
            return await blobs.garbage_collect(conn, candidates, grace, dry_run, self.delete_blob)

    # review: comments, merge requests, activity (readers may comment and review; see README)
    async def add_comment(
        self,
        actor: str,
        repo_id: str,
        *,
        body: str,
        commit_id: str = "",
        merge_request_id: str = "",
        parent_id: str = "",
        anchor: comments.Anchor | None = None,
    ) -> comments.Comment:
        async with self._write() as conn:
            repo, _ = await load_repo_as_user(conn, repo_id, actor, Role.READ)
            if merge_request_id and not is_id(merge_request_id):
                merge_request_id = (await merge_requests.load_request(conn, repo, merge_request_id)).id
            return await comments.add_comment(
                conn,
                repo,
                actor,
                body=body,
                commit_id=commit_id,
                merge_request_id=merge_request_id,
                parent_id=parent_id,
                anchor=anchor,
            )

    async def list_comments(
        self,
        actor: str,
        repo_id: str,
        *,
        commit_id: str = "",
        merge_request_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[comments.Comment], str]:
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            if merge_request_id:
                merge_request_id = (await merge_requests.load_request(conn, repo, merge_request_id)).id
            return await comments.list_comments(
                conn,
                repo,
                commit_id=commit_id,
                merge_request_id=merge_request_id,
                page_size=page_size,
                page_token=page_token,
            )

    async def edit_comment(self, actor: str, repo_id: str, comment_id: str, body: str) -> comments.Comment:
        async with self._write() as conn:
            repo, _ = await load_repo_as_user(conn, repo_id, actor, Role.READ)
            return await comments.edit_comment(conn, repo, actor, comment_id, body)

    async def delete_comment(self, actor: str, repo_id: str, comment_id: str) -> comments.Comment:
        async with self._write() as conn:
            repo, _ = await load_repo_as_user(conn, repo_id, actor, Role.READ)
            return await comments.delete_comment(conn, repo, actor, comment_id)

    async def resolve_comment(self, actor: str, repo_id: str, comment_id: str, resolved: bool) -> comments.Comment:
        async with self._write() as conn:
            repo, _ = await load_repo_as_user(conn, repo_id, actor, Role.READ)
            return await comments.resolve_comment(conn, repo, actor, comment_id, resolved)

    async def open_merge_request(
        self,
        actor: str,
        repo_id: str,
        *,
        target_branch: str = "",
        source_repo_id: str = "",
        source_branch: str,
        title: str,
        description: str = "",
    ) -> merge_requests.MergeRequest:
        async with self._write() as conn:
            repo, _ = await load_repo_as_user(conn, repo_id, actor, Role.READ)
            return await merge_requests.open_request(
                conn,
                repo,
                actor,
                target_branch=target_branch,
                source_repo_id=source_repo_id,
                source_branch=source_branch,
                title=title,
                description=description,
            )

    async def get_merge_request(
        self, actor: str, repo_id: str, mr_id: str
    ) -> tuple[merge_requests.MergeRequest, merge_requests.Evaluation | None]:
        """The request and its evaluation at the branches' current heads (None when not open or a branch is gone)."""
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            mr = await merge_requests.load_request(conn, repo, mr_id)
            if mr.state != "open":
                return mr, None
            try:
                source_head, target_head = await merge_requests.current_heads(conn, mr)
            except FailedPrecondition:
                return mr, None
            return mr, await merge_requests.evaluate(conn, source_head, target_head)

    async def list_merge_requests(
        self, actor: str, repo_id: str, state: str = "", page_size: int = 0, page_token: str = ""
    ) -> tuple[list[merge_requests.MergeRequest], str]:
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            return await merge_requests.list_requests(conn, repo, state, page_size, page_token)

    async def review_merge_request(
        self, actor: str, repo_id: str, mr_id: str, verdict: str, body: str = ""
    ) -> merge_requests.MergeRequest:
        async with self._write() as conn:
            repo, _ = await load_repo_as_user(conn, repo_id, actor, Role.READ)
            return await merge_requests.review(conn, repo, actor, mr_id, verdict, body)

    async def set_merge_request_state(
        self, actor: str, repo_id: str, mr_id: str, state: str
    ) -> merge_requests.MergeRequest:
        async with self._write() as conn:
            repo, _ = await load_repo_as_user(conn, repo_id, actor, Role.READ)
            return await merge_requests.set_state(conn, repo, actor, mr_id, state)

    async def refresh_merge_request(
        self, actor: str, repo_id: str, mr_id: str
    ) -> tuple[merge_requests.MergeRequest, merge_requests.Evaluation]:
        async with self._write() as conn:
            repo, _ = await load_repo_as_user(conn, repo_id, actor, Role.READ)
            return await merge_requests.refresh(conn, repo, actor, mr_id)

    async def accept_merge_request(
        self,
        actor: str,
        repo_id: str,
        mr_id: str,
        *,
        default_strategy: Strategy = Strategy.CONFLICT,
        stem_strategies: Mapping[str, Strategy] | None = None,
        message: str = "",
    ) -> merge_requests.AcceptOutcome:
        async with self._write(actor) as conn:
            repo, username = await load_repo_as_user(conn, repo_id, actor, Role.WRITE)
            return await merge_requests.accept(
                conn,
                repo,
                actor,
                username,
                mr_id,
                default_strategy=default_strategy,
                stem_strategies=stem_strategies,
                message=message,
            )

    async def repository_activity(
        self, actor: str, repo_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[feed.Event], str]:
        async with self._read() as conn:
            repo = await load_repo(conn, repo_id, actor)
            return await feed.repo_feed(conn, repo, page_size, page_token)

    async def whats_new(self, actor: str, page_size: int = 0, page_token: str = "") -> tuple[list[feed.Event], str]:
        async with self._read() as conn:
            await require_user(conn, actor)
            return await feed.whats_new(conn, actor, page_size, page_token)
