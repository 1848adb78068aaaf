"""Fixtures for the vcs tests: a migrated fresh database per test and a ready service."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from beatflow.common import localservers
from beatflow.vcs.db import make_engine
from beatflow.vcs.graph import generations
from beatflow.vcs.migrate import migrate
from beatflow.vcs.model import Repository, Stem, User, Visibility
from beatflow.vcs.service import VcsService


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

    async def commit(
        self, label: str, branch: str = "", expected: str = "", actor: str = "", repo: str = "", **stems: str
    ):
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
            inherit_stems=bool(expected),  # stems not named are carried over from the head
        )


@pytest.fixture(scope="session")
def migrated_template(pg_server: str) -> str:
    """A database migrated to head once per session, copied for each test (CREATE DATABASE ... TEMPLATE):
    running every migration again for each test costs more than the copy."""
    name = "vcs_template_" + uuid.uuid4().hex[:12]
    localservers.create_database(pg_server, name)

    async def upgrade() -> None:
        engine = make_engine(pg_server.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()  # a template may have no open connections when it is copied

    asyncio.run(upgrade())
    return name


@pytest.fixture
def migrated_database_url(pg_server: str, migrated_template: str) -> str:
    """A fresh database of this test's own, already at the head revision (``postgresql+asyncpg://`` URL)."""
    name = "t_" + uuid.uuid4().hex[:16]
    localservers.create_database(pg_server, name, template=migrated_template)
    return pg_server.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name


@pytest.fixture
async def vcs(migrated_database_url: str) -> AsyncIterator[VcsService]:
    engine = make_engine(migrated_database_url, pool_size=5, max_overflow=60)
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


# ---- the same commit graph in a real git repository ------------------------------------------

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class GitGraph:
    def __init__(self, root: Path, parents: Mapping[str, Sequence[str]]) -> None:
        self.root = root
        self._git("init", "-q", ".")
        self.sha: dict[str, str] = {}
        gen = generations(parents)
        if len(parents) > 200:
            self._fast_import(parents, sorted(parents, key=lambda n: (gen[n], n)))
            return
        for i, name in enumerate(sorted(parents, key=lambda n: (gen[n], n))):
            args = ["commit-tree", EMPTY_TREE, "-m", name]
            for p in parents[name]:
                args += ["-p", self.sha[p]]
            env = {"GIT_AUTHOR_DATE": f"{1_700_000_000 + i} +0000", "GIT_COMMITTER_DATE": f"{1_700_000_000 + i} +0000"}
            self.sha[name] = self._git(*args, env=env).strip()
        self.name = {v: k for k, v in self.sha.items()}

    def _fast_import(self, parents: Mapping[str, Sequence[str]], order: Sequence[str]) -> None:
        """Large graphs in one ``git fast-import`` (empty trees, one commit a second)."""
        mark = {name: i + 1 for i, name in enumerate(order)}
        lines: list[str] = []
        for i, name in enumerate(order):
            msg = name.encode()
            lines += ["reset refs/heads/graph", "commit refs/heads/graph", f"mark :{mark[name]}"]
            lines += [f"committer t <t@example.com> {1_700_000_000 + i} +0000", f"data {len(msg)}", name]
            ps = parents[name]
            if ps:
                lines.append(f"from :{mark[ps[0]]}")
                lines += [f"merge :{mark[p]}" for p in ps[1:]]
        marks = self.root / "marks"
        subprocess.run(
            ["git", "fast-import", "--quiet", f"--export-marks={marks}"],
            cwd=self.root,
            input="\n".join(lines) + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
        by_mark = {m: name for name, m in mark.items()}
        for line in marks.read_text().split("\n"):
            if line:
                m, sha = line.split()
                self.sha[by_mark[int(m[1:])]] = sha
        self.name = {v: k for k, v in self.sha.items()}

    def _git(self, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
        full_env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.root),
            **(env or {}),
        }
        out = subprocess.run(["git", *args], cwd=self.root, env=full_env, capture_output=True, text=True, check=check)
        return out.stdout

    def merge_bases(self, a: str, b: str) -> set[str]:
        out = self._git("merge-base", "--all", self.sha[a], self.sha[b], check=False)
        return {self.name[s] for s in out.split()}

    def is_ancestor(self, a: str, b: str) -> bool:
        """``git merge-base --is-ancestor``, derived: a is an ancestor of b iff a is their only merge base."""
        return self.merge_bases(a, b) == {a}


@pytest.fixture
def git_graph(tmp_path: Path) -> Callable[[Mapping[str, Sequence[str]]], GitGraph]:
    """Factory: build a parent map as a real git history (to compare merge bases with git)."""
    counter = itertools.count()

    def build(parents: Mapping[str, Sequence[str]]) -> GitGraph:
        root = tmp_path / f"git{next(counter)}"
        root.mkdir()
        return GitGraph(root, parents)

    return build


@pytest.fixture
def helpers() -> type[Helpers]:
    return Helpers


class Helpers:
    blob = staticmethod(blob)
    stem = staticmethod(stem)
