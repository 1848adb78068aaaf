"""gRPC server bootstrap shared by every service.

``create_grpc_server`` builds an asyncio gRPC server with, for every service:
health checking (NOT_SERVING until the service says it is ready), reflection,
one interceptor that maps :mod:`beatflow.common.errors` to status codes for
unary and streaming calls, and a port that may be 0 (tests) — the bound port is
returned. ``serve`` runs it until SIGINT/SIGTERM, then reports NOT_SERVING,
drains in-flight calls for the grace period and stops; every stop step has a
deadline, so the process always exits.

Once ready, health follows the service's checks (``GrpcServer.checks``): a
check that names a problem (Redis unreachable for too long, a worker loop that
ended) turns the server NOT_SERVING, so an orchestrator stops routing to it or
restarts it; it turns SERVING again when every check passes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from beatflow.common import grpctls, metrics
from beatflow.common.errors import BeatflowError, dependency_outage
from beatflow.common.settings import CommonSettings
from beatflow.common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024

HealthCheck = Callable[[], Awaitable[str | None]]  # a problem that stops the service's work, or None


class DependencyProbe:
    """A health check over ``probe`` (e.g. a Redis PING): a problem once it has failed for ``outage_s``.

    Short blips (a restart, a failover) leave the service SERVING; an outage
    longer than ``outage_s`` turns it NOT_SERVING until the probe passes again.
    """

    def __init__(self, name: str, probe: Callable[[], Awaitable[Any]], outage_s: float, timeout_s: float = 2.0) -> None:
        self.name = name
        self.probe = probe
        self.outage_s = outage_s
        self.timeout_s = timeout_s
        self.failing_since: float | None = None
        self.error = ""

    async def __call__(self) -> str | None:
        try:
            await asyncio.wait_for(self.probe(), self.timeout_s)
        except Exception as exc:
            if self.failing_since is None:
                self.failing_since = time.monotonic()
            self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            self.failing_since = None
            return None
        down = time.monotonic() - self.failing_since
        return f"{self.name} unreachable for {down:.0f}s ({self.error})" if down >= self.outage_s else None


@dataclass
class Service:
    """One gRPC service to register: its full name, the generated ``add_*_to_server`` and the servicer."""

    name: str
    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    service_names: list[str]
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    checks: list[HealthCheck] = field(default_factory=list)
    check_interval_s: float = 1.0
    stop_timeout_s: float = 10.0  # each on_stop hook, after the grace period
    _ready: bool = field(default=False, init=False)
    _reported: bool | None = field(default=None, init=False)
    _monitor: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        await self._report(False)
        await self.server.start()
        if self._monitor is None:
            self._monitor = asyncio.create_task(self._watch(), name="health-monitor")

    async def set_serving(self, serving: bool = True) -> None:
        """Mark the service ready (SERVING while its checks pass) or not (NOT_SERVING)."""
        self._ready = serving
        await self._report(serving and await self.problem() is None)

    async def problem(self) -> str | None:
        """The first problem a check reports, or None."""
        for check in self.checks:
            try:
                found = await check()
            except Exception as exc:
                found = f"health check failed: {type(exc).__name__}: {exc}"
            if found:
                return found
        return None

    async def _report(self, serving: bool) -> None:
        self._reported = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval_s)
            if not self._ready or not self.checks:
                continue
            found = await self.problem()
            if (found is None) != self._reported and self._ready:
                if found:
                    log.error("NOT_SERVING: %s", found)
                else:
                    log.info("SERVING again: every health check passes")
                await self._report(found is None)

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, refuse new calls, let running calls finish for ``grace_s``, run the
        stop hooks (each bounded by ``stop_timeout_s`` past the grace period)."""
        self._ready = False
        if self._monitor is not None:
            await cancel_and_wait(self._monitor)
            self._monitor = None
        await self._report(False)
        await self.server.stop(grace_s)
        for hook in self.on_stop:
            try:
                await asyncio.wait_for(hook(), grace_s + self.stop_timeout_s)
            except TimeoutError:
                log.error("a stop step did not finish within %.0fs; going on", grace_s + self.stop_timeout_s)
            except Exception:
                log.exception("a stop step failed; going on")


def _status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, BeatflowError):
        return exc.code, exc.message
    if isinstance(exc, NotImplementedError):  # what the generated base servicer raises
        return grpc.StatusCode.UNIMPLEMENTED, "method not implemented"
    outage = dependency_outage(exc)
    if outage is not None:  # the request was fine; a store is away: retry later
        return grpc.StatusCode.UNAVAILABLE, f"{outage} is unreachable; retry shortly"
    return grpc.StatusCode.INTERNAL, "internal error"


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain exceptions to status codes and counts every call in the metrics.

    The wrapped handler of a method is built once and kept (keyed by the method and the handler
    the server found), not rebuilt on every call."""

    def __init__(self) -> None:
        self._wrapped: dict[tuple[str, int], tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        found = self._wrapped.get((method, id(handler)))
        if found is not None and found[0] is handler:
            return found[1]
        wrapped = self._wrap(method, handler)
        if len(self._wrapped) > 4096:  # unknown method names are answered by a fresh handler each
            self._wrapped.clear()
        self._wrapped[(method, id(handler))] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:

        async def abort(context: grpc.aio.ServicerContext, exc: BaseException, started: float) -> None:
            code, message = _status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("unhandled error in %s", method, exc_info=exc)
            elif code == grpc.StatusCode.UNAVAILABLE and not isinstance(exc, BeatflowError):
                log.warning("%s -> UNAVAILABLE: %s: %s", method, type(exc).__name__, exc)
            else:
                log.info("%s -> %s: %s", method, code.name, message)
            metrics.observe_rpc(method, code.name, time.perf_counter() - started)
            details = tuple(exc.details.items()) if isinstance(exc, BeatflowError) else ()
            await context.abort(code, message, details)

        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    response = await inner_uu(request, context)
                except asyncio.CancelledError:
                    metrics.observe_rpc(method, "CANCELLED", time.perf_counter() - started)
                    raise
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await abort(context, exc, started)
                    raise
                metrics.observe_rpc(method, "OK", time.perf_counter() - started)
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    async for item in inner_us(request, context):
                        yield item
                except asyncio.CancelledError:
                    metrics.observe_rpc(method, "CANCELLED", time.perf_counter() - started)
                    raise
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await abort(context, exc, started)
                    raise
                metrics.observe_rpc(method, "OK", time.perf_counter() - started)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client-streaming calls are not used by BeatFlow


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _enable_reflection(service_names: list[str], server: grpc.aio.Server) -> None:
    """Serve reflection as ``grpc.reflection.v1`` and ``v1alpha``.

    The two versions' messages are the same on the wire (only the package name
    differs), so one servicer answers both; grpcio-reflection ships only v1alpha.
    """
    servicer = reflection.aio.ReflectionServicer(service_names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


def create_grpc_server(settings: CommonSettings, services: Sequence[Service]) -> GrpcServer:
    """Build (not start) a server for ``services`` on ``settings.host:settings.port``.

    Health starts NOT_SERVING; call ``set_serving()`` once the service is ready
    (e.g. after its model is loaded).
    """
    server = grpc.aio.server(
        interceptors=[ErrorInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    for svc in services:
        svc.add(svc.servicer, server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [svc.name for svc in services]
    reflected = [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    _enable_reflection([*reflected, reflection.SERVICE_NAME, REFLECTION_V1], server)
    address = f"{settings.host}:{settings.port}"
    credentials = grpctls.server_credentials(settings)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind gRPC port {settings.host}:{settings.port}")
    return GrpcServer(
        server=server, port=port, health=health, service_names=names, stop_timeout_s=settings.stop_timeout_s
    )


async def serve(
    grpc_server: GrpcServer,
    settings: CommonSettings,
    *,
    ready: Callable[[], Awaitable[None]] | None = None,
    service: str = "beatflow",
) -> None:
    """Start, mark SERVING once ``ready`` returns, run until a signal, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.metrics_port is not None:
        metrics.start_http_server(settings.metrics_port, settings.host)
    await grpc_server.start()
    log.info("%s listening on %s:%d", service, settings.host, grpc_server.port)
    if ready is not None:
        await ready()
    await grpc_server.set_serving(True)
    log.info("%s SERVING", service)
    await stop.wait()
    log.info("%s shutting down: NOT_SERVING, draining for %.0fs", service, settings.grace_period_s)
    exit_after = settings.grace_period_s + 2 * settings.stop_timeout_s
    _exit_deadline(exit_after, service)
    await grpc_server.stop(settings.grace_period_s)
    log.info("%s stopped", service)


def _exit_deadline(seconds: float, service: str) -> None:
    """End the process ``seconds`` from now whatever still runs (a decode thread that ignores
    its stop flag, a hung connection): a stop always ends, and an orchestrator that sent
    SIGTERM never has to escalate. Unfinished jobs are reclaimed by live workers."""

    def hard_exit() -> None:
        log.error("%s did not stop within %.0fs; exiting now", service, seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()
