"""Fixtures for the vcs tests: a migrated fresh database per test and a ready service."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from beatflow.vcs.db import make_engine
from beatflow.vcs.migrate import migrate
from beatflow.vcs.model import Repository, Stem, User, Visibility
from beatflow.vcs.service import VcsService

_counter = itertools.count()


def blob(label: str) -> str:
    """A blob key (SHA-256) standing for some audio bytes."""
    return hashlib.sha256(label.encode()).hexdigest()


def stem(name: str, label: str | None = None) -> Stem:
    return Stem(name, blob(label or name), "audio/wav", 1000, 1.5)


@dataclass
class World:
    vcs: VcsService
    alice: User
    bob: User
    carol: User
    repo: Repository  # alice's private repo

    async def commit(self, label: str, branch: str = "", expected: str = "", actor: str = "", repo: str = "", **stems: str):
        """Commit stems given as name=label onto ``branch`` expecting ``expected`` (default: current head)."""
        repo_id = repo or self.repo.id
        actor = actor or self.alice.id
        if expected == "":
            refs = {r.name: r.commit_id for r in await self.vcs.list_refs(actor, repo_id) if not r.is_tag}
            expected = refs.get(branch or "main", "")
        return await self.vcs.create_commit(
            actor,
            repo_id,
            branch=branch,
            expected_head=expected,
            message=label,
            stems=[stem(n, lab) for n, lab in stems.items()],
        )


@pytest.fixture
async def vcs(database_url: str) -> AsyncIterator[VcsService]:
    engine = make_engine(database_url, pool_size=5, max_overflow=60)
    await migrate(engine)
    try:
        yield VcsService(engine, gc_grace_period_s=3600)
    finally:
        await engine.dispose()


@pytest.fixture
async def world(vcs: VcsService) -> World:
    alice = await vcs.create_user("alice", "hash-a")
    bob = await vcs.create_user("bob", "hash-b")
    carol = await vcs.create_user("carol", "hash-c")
    repo = await vcs.create_repository(alice.id, "beat", "a beat", Visibility.PRIVATE)
    return World(vcs, alice, bob, carol, repo)
