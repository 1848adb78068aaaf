"""The gateway's FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, MutableMapping
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Send

from beatflow.common.blobstore import BlobStore, make_blob_store
from beatflow.common.jobs import JobQueue
from beatflow.common.metrics import HttpMetricsMiddleware
from beatflow.common.redisreads import PipelinedReads, supports
from beatflow.gateway import httperrors, openapi, schemas
from beatflow.gateway.auth_tokens import Revocations, TokenSigner
from beatflow.gateway.backend_clients import Backends
from beatflow.gateway.config import GatewaySettings
from beatflow.gateway.deps import GatewayState, State
from beatflow.gateway.fastpath import TaskStatusFastPath
from beatflow.gateway.passwords import Passwords
from beatflow.gateway.presign import make_presigner
from beatflow.gateway.routes import ai, audio, auth, models, peaks, progress, repositories, review, vcs, webhooks
from beatflow.gateway.signin_throttle import SigninThrottle

log = logging.getLogger(__name__)

STATIC_DIR = resources.files("beatflow.gateway") / "static"
# The waveform library styles its shadow DOM with a <style> element: allowed by a per-page nonce.
_STUDIO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data: blob:; "
    "media-src 'self' blob: data: http: https:; connect-src 'self' ws: wss:; frame-ancestors 'none'"
)
_NONCE_PLACEHOLDER = "__CSP_NONCE__"


# On every HTTP response (HttpMetricsMiddleware sets them, in its one wrapper of ``send``).
RESPONSE_HEADERS = [(b"x-content-type-options", b"nosniff")]


class GatewayApp(FastAPI):
    """FastAPI, with the task status poll answered in front of its request stack (see :mod:`.fastpath`)."""

    task_status: TaskStatusFastPath | None = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        fast = self.task_status
        if fast is not None and await fast(scope, receive, send):  # type: ignore[arg-type]
            return
        await super().__call__(scope, receive, send)


def make_signer(settings: GatewaySettings) -> TokenSigner:
    """The token signer from the settings (current key, and the previous one during a rotation)."""
    if settings.token_secret:
        secret = settings.token_secret.encode()
    else:
        log.warning("BEATFLOW_TOKEN_SECRET is not set: tokens are signed with a random per-process secret")
        secret = secrets.token_bytes(32)
    until = settings.token_previous_secret_until
    return TokenSigner(
        secret,
        settings.token_ttl_s,
        previous=settings.token_previous_secret.encode() or None,
        previous_until=until.timestamp() if until is not None else None,
    )


def create_app(settings: GatewaySettings | None = None, *, store: BlobStore | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        blob_store = store or make_blob_store(settings)
        # short timeouts: an unreachable Redis is a quick 503, not a hung request
        redis = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
        )
        # task status reads go straight to the shared job store (see backends.py), the poll's
        # record read over one pipelined connection (redisreads; same timeouts) where the URL allows
        reads = None
        if supports(settings.redis_url):
            reads = PipelinedReads(settings.redis_url, connect_timeout=2, timeout=2)
        jobs = JobQueue.from_settings(settings, redis, completes_jobs=False, reads=reads)
        backends = Backends(settings, jobs=jobs)
        app.state.gateway = GatewayState(
            settings=settings,
            backends=backends,
            store=blob_store,
            signer=make_signer(settings),
            revocations=Revocations(redis, cache_s=settings.token_check_cache_s),
            presign=make_presigner(settings, blob_store),
            passwords=Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism),
            throttle=SigninThrottle(
                redis,
                max_per_account=settings.signin_max_failures_per_account,
                max_per_address=settings.signin_max_failures_per_address,
                window_s=settings.signin_window_s,
            ),
        )
        try:
            yield
        finally:
            await peaks.close_cache(app)
            await backends.close()
            if reads is not None:
                await reads.aclose()
            await redis.aclose()

    app = GatewayApp(
        title="BeatFlow",
        version="1.0.0",
        description="AI music generation, stem separation and version control for audio. "
        "Sign up or sign in under /api/auth, then send `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        max_body_size=settings.max_json_body_bytes,  # the upload route raises its own limit
        docs_url=None,  # served below from the packaged Swagger UI, not a CDN (offline installs)
        # Metrics are Prometheus's (HttpMetricsMiddleware); FastAPI's OpenTelemetry hooks
        # otherwise look for a configured provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    httperrors.install(app)
    openapi.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Content-Range", "Content-Disposition", "Accept-Ranges"],
        )

    app.add_middleware(HttpMetricsMiddleware, response_headers=RESPONSE_HEADERS)

    for module in (auth, ai, models, progress, audio, peaks, repositories, vcs, review, webhooks):
        app.include_router(module.router)

    @app.get("/health", tags=["health"], summary="Each backend's gRPC health")
    async def health(state: State, strict: bool = False) -> schemas.HealthOut:
        """``status`` is ok when every backend reports SERVING; ``?strict=true`` answers 503 otherwise."""
        backends = await state.backends.health()
        ok = all(s == "SERVING" for s in backends.values())
        body = schemas.HealthOut(status="ok" if ok else "degraded", backends=backends)
        if strict and not ok:
            return JSONResponse(body.model_dump(), status_code=503)  # type: ignore[return-value]
        return body

    studio_page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    async def studio() -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        response = HTMLResponse(studio_page.replace(_NONCE_PLACEHOLDER, nonce))
        response.headers["Content-Security-Policy"] = _STUDIO_CSP.format(nonce=nonce)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="BeatFlow API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.task_status = TaskStatusFastPath(app, RESPONSE_HEADERS, cors=bool(settings.cors_origins))

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")
    return app
