"""The task status poll answered in front of FastAPI's request stack (same functions, same bytes).

``GET /api/ai/tasks/{id}`` is the gateway's most frequent request (every client
polls it). Through FastAPI it passes about ten pure-ASGI layers and wrappers
(error middleware, the JSON body limit and its exception wrapper, metrics,
exception handling, exit stack, router, route, dependency solving), which cost
more CPU than the answer itself: with two workers on two cores the gateway
served about 1,300 status reads/s at 1.2 ms CPU each, beside 6,600/s for a
trivial FastAPI app. :class:`TaskStatusFastPath` answers the same request
with the same parts the route uses, called directly:

* the caller: :func:`beatflow.gateway.deps.caller` (the route's ``HTTPBearer``
  dependency calls it too: token, signature, revocation);
* the answer: :func:`beatflow.gateway.routes.ai.task_status` (the route's body);
* errors: the app's own exception handlers, looked up as Starlette's exception
  middleware looks them up (ApiError 401/404, Redis unreachable 503); anything
  else is a 500 as Starlette's error middleware sends it, and is raised on;
* the response headers the metrics middleware sets on every response, and the
  request counted under the route's template, as that middleware counts it.

It steps aside (FastAPI answers) for anything it would not answer exactly as
the route does: another method or path, a task id the path parameter would not
accept (422), a request with a body (Content-Length or Transfer-Encoding: the
body limit judges those), a cross-origin request when CORS is on, a gateway
without its own job store, or before the app's state exists. The route stays
declared, so the OpenAPI description is unchanged; ``test_fastpath`` holds the
two answers equal.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from beatflow.common.metrics import observe_http, with_headers
from beatflow.gateway.deps import GatewayState, caller
from beatflow.gateway.routes import ai

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]

# Requests the route's stack must judge: a body (the JSON body limit), an Origin (CORS, when on).
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


class TaskStatusFastPath:
    """Answers ``GET /api/ai/tasks/{id}`` as ``routes.ai.get_task`` does; ``__call__`` says whether it did."""

    def __init__(self, app: FastAPI, response_headers: Sequence[tuple[bytes, bytes]], *, cors: bool = False) -> None:
        # the route as declared (the app includes ai.router without a further prefix)
        route = next(r for r in ai.router.routes if isinstance(r, APIRoute) and r.endpoint is ai.get_task)
        if route.methods != {"GET"}:
            raise ValueError("the task status route is not a GET")
        self.app = app
        self.template = route.path  # the metrics label, as the middleware reads it from the matched route
        self.prefix = route.path.removesuffix("{task_id}")
        if self.prefix == route.path or "{" in self.prefix:
            raise ValueError(f"unexpected task status path {route.path!r}")
        self._task_id = re.compile(ai.TASK_ID_PATTERN)
        self.response_headers = list(response_headers)
        self._replaced = {name.lower() for name, _ in self.response_headers}
        self._step_aside = _BODY_HEADERS | {b"origin"} if cors else _BODY_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        path: str = scope["path"]
        if not path.startswith(self.prefix):
            return False
        task_id = path[len(self.prefix) :]
        if not 0 < len(task_id) <= ai.TASK_ID_MAX or self._task_id.fullmatch(task_id) is None:
            return False
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:  # the first, as Starlette's Headers.get reads it
                    authorization = value.decode("latin-1")
            elif name in self._step_aside:
                return False
        state: GatewayState | None = getattr(self.app.state, "gateway", None)
        if state is None or state.backends.jobs is None:
            return False
        started = time.perf_counter()
        status = 500
        sent = False

        async def send_response(response: Response) -> None:
            nonlocal status, sent
            status = response.status_code
            response.raw_headers = with_headers(response.raw_headers, self.response_headers, self._replaced)
            sent = True
            await response(scope, receive, send)

        try:
            try:
                user = await caller(state, authorization)
                response = await ai.task_status(state.backends.jobs, user, task_id)
            except Exception as exc:
                response = await self._handled(exc, scope, receive)
            await send_response(response)
        except Exception:
            status = 500
            if not sent:  # as Starlette's ServerErrorMiddleware: a plain 500 (outside the metrics layer), raised on
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        finally:
            observe_http("GET", self.template, status, time.perf_counter() - started)
        return True

    async def _handled(self, exc: Exception, scope: Scope, receive: Receive) -> Response:
        """The app's handler's answer to ``exc`` (found as Starlette's ExceptionMiddleware finds it); else raises."""
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:  # a handler of Exception is the error middleware's (it answers 500, then raises)
                break
            handler = handlers.get(cls)
            if handler is not None:
                answer = handler(Request(scope, receive), exc)
                if inspect.isawaitable(answer):
                    answer = await answer
                return answer
        raise exc
