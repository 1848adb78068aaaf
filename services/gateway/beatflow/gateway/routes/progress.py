"""Live task progress: Server-Sent Events and a WebSocket, both relaying Jobs.WatchJob.

Both replay the task's events from the start (a late subscriber sees the
history), follow live events, and end after the terminal event. SSE clients
may resume with ``Last-Event-ID``. Idle streams carry a keep-alive so proxies
do not cut them (for SSE, FastAPI's own framing and ping; the WebSocket sends
``{"type": "keepalive"}``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Header, Path, Query, WebSocket, WebSocketDisconnect
from fastapi.sse import EventSourceResponse, ServerSentEvent

from beatflow.common.tasks import cancel_and_wait
from beatflow.gateway import convert
from beatflow.gateway.auth_tokens import Principal
from beatflow.gateway.deps import GatewayState, State, _principal, current_user_or_query_token, ws_state
from beatflow.gateway.httperrors import ApiError
from beatflow.gateway.task_blob_access import owned_job

router = APIRouter(tags=["ai"])

KEEPALIVE_S = 15.0
_DONE = object()

TaskId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-.:]+$")]


async def _event_payloads(
    state: GatewayState, user: Principal, task_id: str, after: str
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """("progress" | "done", event JSON) for each job event; the final one carries the whole task."""
    async for event in state.backends.watch_job(task_id, after):
        if event.state in convert.TERMINAL:
            job = await state.backends.get_job(task_id)
            payload = convert.task_event(event, job).model_dump()
            payload["task"] = convert.task(job).model_dump()
            yield "done", payload
            return
        yield "progress", convert.task_event(event).model_dump()


async def _with_keepalive(source: AsyncIterator[Any], every_s: float) -> AsyncIterator[Any]:
    """Items of ``source``, with None whenever nothing arrived for ``every_s`` seconds."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except BaseException as exc:
            await queue.put(exc)
            return
        await queue.put(_DONE)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), every_s)
            except TimeoutError:
                yield None
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        await cancel_and_wait(task)


async def _owned_task(
    task_id: TaskId, state: State, user: Annotated[Principal, Depends(current_user_or_query_token)]
) -> Principal:
    """404 before the stream starts (a dependency runs before the response's headers go out)."""
    await owned_job(state, user, task_id)
    return user


@router.get(
    "/api/ai/tasks/{task_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "Events 'progress', then one 'done'"},
        404: {"description": "No such task, or not yours"},
    },
    summary="Task progress as Server-Sent Events",
)
async def task_events(
    task_id: TaskId,
    state: State,
    user: Annotated[Principal, Depends(_owned_task)],
    # Not nullable in the schema: a header or query value is text, never JSON null.
    last_event_id: Annotated[str, Header(alias="Last-Event-ID", max_length=64, pattern=r"^[0-9]+-[0-9]+$")] = "",
    after: Annotated[
        str, Query(max_length=64, pattern=r"^[0-9]+-[0-9]+$", description="Resume after this event id")
    ] = "",
) -> AsyncIterator[ServerSentEvent]:
    """FastAPI frames the events and sends a keep-alive comment when the stream is idle."""
    yield ServerSentEvent(retry=2000, comment="stream start")
    try:
        async for kind, payload in _event_payloads(state, user, task_id, after or last_event_id or ""):
            yield ServerSentEvent(event=kind, id=payload.get("event_id") or None, data=payload)
    except grpc.aio.AioRpcError as exc:
        yield ServerSentEvent(event="error", data={"detail": exc.details() or exc.code().name, "code": exc.code().name})


@router.websocket("/ws/tasks/{task_id}")
async def task_socket(
    websocket: WebSocket,
    task_id: str,
    state: Annotated[GatewayState, Depends(ws_state)],
    access_token: str | None = None,
) -> None:
    """Task progress as JSON messages ``{"type": "progress"|"done", ...}``; closes after "done".

    Authenticate with ``Authorization: Bearer`` or ``?access_token=`` (browsers
    cannot set headers on a WebSocket). Another user's task closes with 4404.
    """
    header = websocket.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else access_token
    await websocket.accept()
    try:
        user = await _principal(state, token)
        await owned_job(state, user, task_id)
    except ApiError as exc:
        await websocket.send_json({"type": "error", "detail": exc.detail})
        await websocket.close(code={401: 4401, 503: 1013}.get(exc.status, 4404))  # 1013: try again later
        return

    async def watch_disconnect() -> None:
        # Client frames (text or binary) are ignored; only the disconnect matters.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    listener = asyncio.create_task(watch_disconnect())
    try:
        async for item in _with_keepalive(_event_payloads(state, user, task_id, ""), KEEPALIVE_S):
            if listener.done():
                return
            if item is None:
                await websocket.send_json({"type": "keepalive"})
                continue
            kind, payload = item
            await websocket.send_json({"type": kind, **payload})
        await websocket.close(code=1000)
    except grpc.aio.AioRpcError as exc:
        await websocket.send_json({"type": "error", "detail": exc.details() or exc.code().name})
        await websocket.close(code=1011)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await cancel_and_wait(listener)
