"""The shared gRPC bootstrap: health, reflection, error mapping, deadlines, graceful shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from beatflow.common.errors import FailedPrecondition, NotFound
from beatflow.common.grpcserver import GrpcServer, Service, create_grpc_server
from beatflow.common.settings import CommonSettings

SERVICE = "beatflow.test.Probe"


class Probe:
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.finished_slow = asyncio.Event()

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if request == b"missing":
            raise NotFound("no such thing: missing")
        if request == b"crash":
            raise ValueError("secret internal detail")
        if request.startswith(b"sleep"):
            try:
                await asyncio.sleep(float(request[5:]))
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            self.finished_slow.set()
        return b"echo:" + request

    async def stream(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"%d" % i
        if request == b"fail":
            raise FailedPrecondition("stream broke after three items")


def _add(probe: Probe, server: grpc.aio.Server) -> None:
    ident = lambda b: b  # noqa: E731 - raw bytes in and out
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(probe.unary, ident, ident),
        "Stream": grpc.unary_stream_rpc_method_handler(probe.stream, ident, ident),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


@pytest.fixture
async def running() -> AsyncIterator[tuple[GrpcServer, Probe, grpc.aio.Channel]]:
    probe = Probe()
    gs = create_grpc_server(CommonSettings(port=0), [Service(SERVICE, _add, probe)])
    await gs.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gs.port}")
    yield gs, probe, channel
    await channel.close()
    await gs.stop(0)


def _call(channel: grpc.aio.Channel, method: str) -> Any:
    ident = lambda b: b  # noqa: E731
    if method == "Stream":
        return channel.unary_stream(f"/{SERVICE}/{method}", ident, ident)
    return channel.unary_unary(f"/{SERVICE}/{method}", ident, ident)


async def test_health_starts_not_serving_then_serving(running: Any) -> None:
    gs, _, channel = running
    stub = health_pb2_grpc.HealthStub(channel)
    resp = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await gs.set_serving(True)
    for name in ("", SERVICE):
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_services(running: Any) -> None:
    _, _, channel = running
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = []
    async for resp in stub.ServerReflectionInfo(requests()):
        names = [s.name for s in resp.list_services_response.service]
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names


async def test_reflection_v1_answers_too(running: Any) -> None:
    """Clients that speak only grpc.reflection.v1 (newer grpcurl, Postman) find the services and their files."""
    _, _, channel = running
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health")

    replies = [reply async for reply in call(requests())]
    names = [s.name for s in replies[0].list_services_response.service]
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= set(names)
    assert replies[1].file_descriptor_response.file_descriptor_proto  # the health proto, serialized


async def test_domain_errors_map_to_status_codes(running: Any) -> None:
    _, _, channel = running
    assert await _call(channel, "Unary")(b"hi") == b"echo:hi"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "Unary")(b"missing")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "no such thing: missing"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "Unary")(b"crash")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.value.details() or "")


async def test_streaming_errors_map_after_items(running: Any) -> None:
    _, _, channel = running
    got = [item async for item in _call(channel, "Stream")(b"ok")]
    assert got == [b"0", b"1", b"2"]
    call = _call(channel, "Stream")(b"fail")
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for item in call:
            received.append(item)
    assert received == [b"0", b"1", b"2"]
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_deadline_cancels_the_handler(running: Any) -> None:
    _, probe, channel = running
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "Unary")(b"sleep5", timeout=0.2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(probe.cancelled.wait(), 2)
    assert not probe.finished_slow.is_set()


async def test_graceful_shutdown_reports_not_serving_and_drains(running: Any) -> None:
    gs, probe, channel = running
    await gs.set_serving(True)
    in_flight = asyncio.ensure_future(_call(channel, "Unary")(b"sleep0.5"))
    await asyncio.sleep(0.1)
    stopping = asyncio.ensure_future(gs.stop(5))
    await asyncio.sleep(0.05)
    assert await in_flight == b"echo:sleep0.5"  # the running call was drained, not cut
    await stopping
    assert probe.finished_slow.is_set()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "Unary")(b"late", timeout=1)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def test_unimplemented_method_reports_unimplemented() -> None:
    from beatflow.v1 import jobs_pb2, jobs_pb2_grpc

    base = jobs_pb2_grpc.JobsServicer()  # the generated base: every method unimplemented
    name = jobs_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name
    gs = create_grpc_server(CommonSettings(port=0), [Service(name, jobs_pb2_grpc.add_JobsServicer_to_server, base)])
    await gs.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gs.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await jobs_pb2_grpc.JobsStub(channel).GetJob(jobs_pb2.GetJobRequest(job_id="x"))
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await gs.stop(0)
