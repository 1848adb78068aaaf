"""Build the vcs gRPC server: database engine, schema at head, the Vcs service with health and reflection."""

from __future__ import annotations

import asyncio
import functools
import logging
import time

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from beatflow.common.blobstore import make_blob_store
from beatflow.common.grpcserver import DependencyProbe, GrpcServer, Service, create_grpc_server
from beatflow.v1 import vcs_pb2, vcs_pb2_grpc
from beatflow.vcs.blobs import probe_blob
from beatflow.vcs.config import VcsSettings
from beatflow.vcs.db import make_engine
from beatflow.vcs.migrate import current_revision, head_revision, migrate
from beatflow.vcs.service import VcsService
from beatflow.vcs.servicer import VcsServicer

log = logging.getLogger(__name__)

SERVICE_NAME = vcs_pb2.DESCRIPTOR.services_by_name["Vcs"].full_name


async def prepare_schema(engine: AsyncEngine, settings: VcsSettings) -> None:
    """Migrate to head, or (when a separate job migrates) wait until the schema is at head."""
    if settings.migrate_on_start:
        rev = await migrate(engine)
        log.info("schema at revision %s", rev)
        return
    head = head_revision()
    deadline = time.monotonic() + settings.schema_wait_s
    while (rev := await current_revision(engine)) != head:
        if time.monotonic() > deadline:
            raise RuntimeError(f"schema is at {rev}, expected {head}: run `python -m beatflow.vcs migrate`")
        log.info("waiting for the schema migration (at %s, want %s)", rev, head)
        await asyncio.sleep(2.0)


def add_vcs(servicer: VcsServicer, server: grpc.aio.Server) -> None:
    """Register the Vcs service, with Log answered by ``servicer.log_bytes``: a history page is
    sent as the bytes it was built as (no response serializer), not parsed into a LogResponse
    for gRPC to serialize again (about 0.1 ms of a 30 KB page). The generated registration names
    every method (registered methods are found before generic handlers); Log's entry is then
    registered again with this handler, which replaces it (tests/test_grpc.py checks Log is answered
    from the bytes)."""
    log_handler = grpc.unary_unary_rpc_method_handler(
        servicer.log_bytes, request_deserializer=vcs_pb2.LogRequest.FromString, response_serializer=None
    )
    vcs_pb2_grpc.add_VcsServicer_to_server(servicer, server)
    server.add_registered_method_handlers(SERVICE_NAME, {"Log": log_handler})


async def create_server(settings: VcsSettings) -> tuple[GrpcServer, int]:
    """A built (not started) server; the schema is at head when this returns."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    try:
        await prepare_schema(engine, settings)
    except BaseException:
        await engine.dispose()
        raise
    store = make_blob_store(settings)
    service = VcsService(
        engine,
        gc_grace_period_s=settings.gc_grace_period_s,
        delete_blob=store.delete if settings.gc_delete_from_store else None,
        probe_blob=functools.partial(probe_blob, store),
    )
    gs = create_grpc_server(settings, [Service(SERVICE_NAME, add_vcs, VcsServicer(service))])
    gs.on_stop.append(engine.dispose)

    async def ping() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    gs.checks.append(DependencyProbe("postgresql", ping, settings.health_outage_s))
    return gs, gs.port
