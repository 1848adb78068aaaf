"""The fault suite: the whole stack, on a PostgreSQL and a Redis of its own, under faults.

* kill -9 of generator and separator processes mid-job (restarted on the same port):
  every job ends exactly once (one terminal event, one result), none stuck, none lost;
* Redis stopped for about 5 s while jobs run and wait, then started again on the same
  data: every job finishes without restarting a service, requests meanwhile are 503
  with Retry-After, and health is NOT_SERVING during the outage and SERVING after;
* PostgreSQL stopped for about 5 s during commits: clean 503s, no partial commit, and
  commits work again without restarting vcs.

The stack's servers are its own, so stopping them disturbs no other test. The short
variants run always; the longer kill loop is marked slow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beatflow.common import localservers
from tests import stack_fixtures
from tests.stack_fixtures import Proc, Stack, tone_wav

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "DEAD"}
OUTAGE_S = 5.0

FAULT_ENV = {
    # a killed worker's job is reclaimed after 3 s; kills cost attempts, so allow many
    "BEATFLOW_JOB_HEARTBEAT_TIMEOUT_S": "3",
    "BEATFLOW_JOB_RETRY_LIMIT": "12",
    "BEATFLOW_SEPARATOR_HEARTBEAT_S": "0.5",
    "BEATFLOW_SEPARATOR_CLAIM_BLOCK_MS": "200",
    "BEATFLOW_HEALTH_OUTAGE_S": "2",
    "BEATFLOW_GRACE_PERIOD_S": "1",
    "BEATFLOW_STOP_TIMEOUT_S": "2",
}


@dataclasses.dataclass
class FaultStack:
    stack: Stack
    pg: localservers.LocalServer
    pg_dir: Path
    redis_dir: Path

    @property
    def redis_url(self) -> str:
        assert self.stack.redis is not None
        return self.stack.redis.url

    def proc(self, name: str) -> Proc:
        return next(p for p in self.stack.procs if p.name == name)

    def kill(self, name: str) -> int:
        """SIGKILL the service's process (no shutdown code runs); returns its pid."""
        proc = self.proc(name)
        os.kill(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait(10)
        return proc.proc.pid

    def start_again(self, name: str) -> Proc:
        """Start the service again on its port (after a kill), without waiting for it."""
        old = self.proc(name)
        new = stack_fixtures._start(name, self.stack.env, self.stack.logs, old.port)
        self.stack.procs[self.stack.procs.index(old)] = new
        return new

    def wait_serving(self, *names: str, timeout_s: float = 120.0) -> None:
        stack_fixtures._wait_ready([self.proc(n) for n in names], stack_fixtures._grpc_serving, timeout_s)

    def stop_redis(self) -> None:
        assert self.stack.redis is not None
        self.stack.redis.stop()  # SIGTERM: Redis writes its data and exits

    def start_redis(self) -> None:
        assert self.stack.redis is not None
        self.stack.redis = localservers.start_redis(self.redis_dir, port=self.stack.redis.port, persist=True)

    def stop_postgres(self) -> None:
        self.pg.stop()

    def start_postgres(self) -> None:
        self.pg = localservers.start_postgres(self.pg_dir, port=self.pg.port)


def _start_own_postgres(data_dir: Path) -> localservers.LocalServer:
    """A PostgreSQL of the suite's own, with durable commits (what a restart must keep).

    initdb has been seen to fail once on a machine busy with other clusters; one more try.
    """
    try:
        return localservers.start_postgres(data_dir)
    except subprocess.CalledProcessError as exc:
        print(f"initdb failed ({exc.returncode}): {exc.stderr!r}; trying once more")
        shutil.rmtree(data_dir, ignore_errors=True)
        time.sleep(1.0)
        return localservers.start_postgres(data_dir)


@pytest.fixture(scope="module")
def faults(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    root = tmp_path_factory.mktemp("faults")
    root.chmod(0o755)
    pg = _start_own_postgres(root / "pg")
    holder: FaultStack | None = None
    try:
        own = dataclasses.replace(servers, postgres_url=pg.url)
        with stack_fixtures.run_stack(own, root, extra_env=FAULT_ENV, redis_persist=True) as stack:
            holder = FaultStack(stack, pg, root / "pg", root / "redis")
            yield holder
    finally:
        (holder.pg if holder is not None else pg).stop()


@pytest.fixture(scope="module")
def user(faults: FaultStack) -> tuple[str, str]:
    return faults.stack.signup("faults")


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str, stack: Stack | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    tails = stack.logs_tail() if stack is not None else ""
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{tails}")


def _health(addr: str) -> str:
    with grpc.insecure_channel(addr) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _submit_generation(http: httpx.Client, seconds: float = 2.0) -> str:
    r = http.post("/api/ai/generate", json={"prompt": f"fault {uuid.uuid4().hex[:6]}", "duration": seconds})
    assert r.status_code == 202, r.text
    return str(r.json()["task_id"])


def _submit_separation(http: httpx.Client, blob: str) -> str:
    r = http.post("/api/ai/separate-stems", json={"audio_blob": blob})
    assert r.status_code == 202, r.text
    return str(r.json()["task_id"])


def _job(client: redis.Redis, task_id: str) -> dict[str, str]:
    raw = client.hgetall(f"bf:job:{task_id}")
    return {k.decode(): v.decode() for k, v in raw.items()}


def _consumer_pid(job: dict[str, str]) -> int | None:
    consumer = job.get("consumer", "")  # "<service>-<host>-<pid>-<id>"
    parts = consumer.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _assert_each_ended_once(client: redis.Redis, task_ids: list[str], stack: Stack, timeout_s: float = 180.0) -> None:
    """Every job reaches SUCCEEDED with its result, and its history holds exactly one terminal event."""

    def all_done() -> bool:
        return all(_job(client, t).get("state") in TERMINAL for t in task_ids)

    _wait(all_done, timeout_s, f"{len(task_ids)} jobs to end", stack)
    for task_id in task_ids:
        job = _job(client, task_id)
        assert job["state"] == "SUCCEEDED", (task_id, job.get("error"), job.get("attempts"))
        assert job["result_blobs"] not in ("", "{}")
        events = client.xrange(f"bf:ev:{task_id}")
        terminal = [f[b"state"].decode() for _id, f in events if f[b"state"].decode() in TERMINAL]
        assert terminal == ["SUCCEEDED"], (task_id, terminal)


def _kill_when_running(
    client: redis.Redis, pid: int, submit: Callable[[], str], task_ids: list[str], stack: Stack
) -> None:
    """Submit work until one of the jobs runs in process ``pid``, then kill -9 it."""
    mine: list[str] = []

    def running_there() -> bool:
        if not mine or all(_job(client, t).get("state") in TERMINAL for t in mine):
            mine.append(submit())  # the earlier ones ended (or ran elsewhere) before a kill caught them
            task_ids.append(mine[-1])
        return any((job := _job(client, t)).get("state") == "RUNNING" and _consumer_pid(job) == pid for t in task_ids)

    _wait(running_there, 120, f"a job running in pid {pid}", stack)
    os.kill(pid, signal.SIGKILL)


def _kill_mid_job(
    faults: FaultStack, client: redis.Redis, service: str, submit: Callable[[], str], task_ids: list[str]
) -> None:
    """Submit work until a job of ``service`` runs in its current process, then kill -9 that process."""
    _kill_when_running(client, faults.proc(service).proc.pid, submit, task_ids, faults.stack)
    faults.proc(service).proc.wait(10)


def _kill_loop(faults: FaultStack, user: tuple[str, str], rounds: int) -> tuple[int, int]:
    """``rounds`` times: kill -9 the generator mid-job, then the separator; returns (kills, jobs)."""
    _uid, token = user
    stack = faults.stack
    client = redis.Redis.from_url(faults.redis_url)
    blob = stack.upload(token, tone_wav(seconds=3.0, rate=22050))["blob_key"]
    task_ids: list[str] = []
    recoveries: list[float] = []
    kills = 0
    with stack.client(token) as http:
        for _ in range(rounds):
            _kill_mid_job(faults, client, "generator", lambda: _submit_generation(http), task_ids)
            kills += 1
            faults.start_again("generator")  # comes up while the separator is being killed
            _kill_mid_job(faults, client, "separator", lambda: _submit_separation(http, blob), task_ids)
            kills += 1
            faults.start_again("separator")
            faults.wait_serving("generator", "separator")
            # the gateway's channels reconnect by themselves (backoff capped at 1 s)
            seen = time.monotonic()
            _wait(lambda: _gateway_sees_serving(http), 30, "the gateway to reach both again", stack)
            recoveries.append(time.monotonic() - seen)
        _assert_each_ended_once(client, task_ids, stack)
    client.close()
    print(
        f"\nkill loop: {kills} kills, {len(task_ids)} jobs, each ended once; gateway saw the restarted "
        f"backends {max(recoveries):.2f}s (max) after they were SERVING"
    )
    return kills, len(task_ids)


def _gateway_sees_serving(http: httpx.Client) -> bool:
    backends = http.get("/health").json()["backends"]
    return bool(backends["generator"] == "SERVING" and backends["separator"] == "SERVING")


def test_killed_workers_leave_every_job_ending_once(faults: FaultStack, user: tuple[str, str]) -> None:
    kills, jobs = _kill_loop(faults, user, rounds=1)
    assert kills == 2 and jobs >= 2


@pytest.mark.slow
def test_kill_loop_of_ten_workers(faults: FaultStack, user: tuple[str, str]) -> None:
    """Ten generator and separator workers (forked from a warm parent: no start-up cost per
    kill) killed with SIGKILL mid-job, next to the stack's own workers."""
    _uid, token = user
    stack = faults.stack
    client = redis.Redis.from_url(faults.redis_url)
    blob = stack.upload(token, tone_wav(seconds=3.0, rate=22050))["blob_key"]
    env = {**stack.env, "BEATFLOW_GENERATOR_MELODY_MODEL": "none"}
    log = open(stack.logs / "fault_workers.log", "ab")
    harness = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("fault_workers.py"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        start_new_session=True,
    )
    assert harness.stdin is not None and harness.stdout is not None
    task_ids: list[str] = []
    kills = 0

    def read_line() -> str:
        ready, _, _ = select.select([harness.stdout], [], [], 180)
        assert ready, "the worker harness did not answer\n" + (stack.logs / "fault_workers.log").read_text()[-3000:]
        return harness.stdout.readline().decode().strip()  # type: ignore[union-attr]

    try:
        assert read_line() == "ready"
        with stack.client(token) as http:
            for i in range(10):
                kind = ("generator", "separator")[i % 2]
                harness.stdin.write(f"{kind}\n".encode())
                harness.stdin.flush()
                pid = int(read_line())
                submit = (
                    (lambda: _submit_generation(http))
                    if kind == "generator"
                    else (lambda: _submit_separation(http, blob))
                )
                _kill_when_running(client, pid, submit, task_ids, stack)
                kills += 1
        _assert_each_ended_once(client, task_ids, stack)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(harness.pid, signal.SIGKILL)  # the harness and any worker it forked
        harness.wait(10)
        log.close()
        client.close()
    print(f"\nkill loop: {kills} forked workers killed mid-job, {len(task_ids)} jobs, each ended once")
    assert kills == 10 and len(task_ids) >= 10


def test_redis_outage_every_job_finishes_and_requests_get_503(faults: FaultStack, user: tuple[str, str]) -> None:
    _uid, token = user
    stack = faults.stack
    client = redis.Redis.from_url(faults.redis_url)
    blob = stack.upload(token, tone_wav(seconds=2.0, rate=22050))["blob_key"]
    with stack.client(token) as http:
        # some jobs running, more waiting behind them
        task_ids = [_submit_generation(http, 1.0) for _ in range(4)] + [_submit_separation(http, blob)]
        _wait(lambda: _job(client, task_ids[0]).get("state") == "RUNNING", 60, "a running job", stack)
        client.close()
        faults.stop_redis()
        stopped = time.monotonic()
        try:
            during = [
                http.post("/api/ai/generate", json={"prompt": "during the outage", "duration": 1}),
                http.get(f"/api/ai/status/{task_ids[-1]}"),
                http.get(f"/api/ai/tasks/{task_ids[-1]}"),  # the status poll's own path and Redis connection
            ]
            for r in during:
                assert r.status_code == 503, r.text
                assert int(r.headers["retry-after"]) >= 1
            # unreachable longer than BEATFLOW_HEALTH_OUTAGE_S: the job services say NOT_SERVING
            _wait(lambda: _health(stack.addrs["generator"]) == "NOT_SERVING", 20, "generator NOT_SERVING", stack)
            _wait(lambda: _health(stack.addrs["separator"]) == "NOT_SERVING", 20, "separator NOT_SERVING", stack)
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        finally:
            faults.start_redis()
            outage_s = time.monotonic() - stopped
        _wait(lambda: _health(stack.addrs["generator"]) == "SERVING", 30, "generator SERVING again", stack)
        _wait(lambda: _health(stack.addrs["separator"]) == "SERVING", 30, "separator SERVING again", stack)
        # the gateway reads tasks again (its connections to Redis are new ones)
        _wait(lambda: http.get(f"/api/ai/tasks/{task_ids[0]}").status_code == 200, 30, "task reads again", stack)
        # the workers never exited: queued and interrupted jobs all finish, and new ones run
        task_ids.append(_submit_generation(http, 1.0))
        client = redis.Redis.from_url(faults.redis_url)
        _assert_each_ended_once(client, task_ids, stack)
        client.close()
        pids = {p.name: p.proc.poll() for p in stack.procs}
        assert all(code is None for code in pids.values()), pids  # nothing was restarted or died
    print(
        f"\nredis outage: {outage_s:.1f}s; {len(during)} requests meanwhile all 503; "
        f"{len(task_ids)} jobs each ended once, no service restarted"
    )


def test_postgres_outage_clean_503s_and_no_partial_commit(faults: FaultStack, user: tuple[str, str]) -> None:
    _uid, token = user
    stack = faults.stack
    with stack.client(token) as http:
        r = http.post("/api/repositories/create", json={"name": f"faults-{uuid.uuid4().hex[:6]}"})
        assert r.status_code == 201, r.text
        repo = r.json()["id"]
        blobs = [stack.upload(token, tone_wav(seconds=0.5, freq=110.0 * (i + 1)))["blob_key"] for i in range(4)]

        def commit(i: int) -> httpx.Response:
            stems = [{"name": "drums", "blob_key": blobs[i % 4]}, {"name": "bass", "blob_key": blobs[(i + 1) % 4]}]
            return http.post(f"/api/vcs/commit/{repo}", json={"message": f"take {i}", "stems": stems})

        made = [commit(0), commit(1)]
        assert [r.status_code for r in made] == [201, 201]
        faults.stop_postgres()
        stopped = time.monotonic()
        try:
            during = [commit(i) for i in range(2, 5)]
            for r in during:
                assert r.status_code == 503, r.text
                assert int(r.headers["retry-after"]) >= 1
            assert http.get(f"/api/vcs/history/{repo}").status_code == 503
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        finally:
            faults.start_postgres()
            outage_s = time.monotonic() - stopped
        # vcs was not restarted: commits work again once PostgreSQL is back
        after = _wait(lambda: (r := commit(5)).status_code == 201 and r, 30, "a commit after the outage", stack)
        history = http.get(f"/api/vcs/history/{repo}", params={"page_size": 50})
        assert history.status_code == 200, history.text
    commits = history.json()["commits"]
    # only whole commits: the two before, the one after; each with both of its stems
    pg_log = faults.pg.log_path.read_text(errors="replace")[-3000:] if faults.pg.log_path else ""
    assert [c["message"] for c in commits] == ["take 5", "take 1", "take 0"], (
        [r.json() for r in made],
        after.json(),
        pg_log,
        stack.logs_tail(),
    )
    assert commits[0]["id"] == after.json()["id"]
    for c in commits:
        assert {s["name"] for s in c["stems"]} == {"drums", "bass"}, c
    print(f"\npostgres outage: {outage_s:.1f}s; {len(during) + 1} requests meanwhile all 503; no partial commit")
