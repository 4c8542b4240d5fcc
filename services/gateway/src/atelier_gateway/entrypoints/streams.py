"""Live streams: Server-Sent Events and WebSocket over a job's log, or over the list of jobs.

Both carry the same events with the same ids (``<seq>.<index>``, the event's position in the
log) and resume the same way: SSE by ``Last-Event-ID`` (what a browser's ``EventSource`` sends
when it reconnects) or ``?after=``, WebSocket by ``?after=``. A job's stream ends after the
job's terminal event; asked again after it, it answers 204, which tells ``EventSource`` to stop
reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Header, Query, Response, WebSocket, WebSocketDisconnect
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.websockets import WebSocketState

from atelier_gateway.app.errors import AppError, JobNotFound
from atelier_gateway.app.streams import JobListStream, JobStream, ListFilter, Position, StreamEvent
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.problems import problem_responses, status_of

router = APIRouter(tags=["streams"])

_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SSE_HEADERS = {"Content-Encoding": "identity"}
"""Never compressed (a compressing proxy would hold events back); sse-starlette adds
``X-Accel-Buffering: no`` and ``Cache-Control: no-store`` so proxies pass each event on at once."""

AfterQuery = Annotated[
    str | None,
    Query(description="Resume after this event id (`<seq>.<index>`); `Last-Event-ID` wins over it."),
]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", include_in_schema=False)]


def stream_tenant(deps: Deps) -> str:
    """Whose streams these are. The seam for auth: a browser's ``EventSource`` (and a WebSocket)
    cannot send an ``Authorization`` header, so when auth arrives a stream is authorised by a
    cookie or a short-lived ``?token=`` checked here, not by a header the API's other routes read."""
    return deps.settings.tenant


def _position(text: str | None) -> Position | None:
    return Position.parse(text) if text else None


async def _job_stream(deps: Deps, job_id: str, after: str | None) -> JobStream:
    """A job's stream, open (``JobNotFound``, ``Unavailable``… before anything is answered)."""
    if not _JOB_ID.fullmatch(job_id):  # it becomes a subject: no dots, no wildcards
        raise JobNotFound(f"No job {job_id[:80]!r}.")
    stream = JobStream(deps.feeds, deps.joblog, stream_tenant(deps), job_id, _position(after))
    await stream.open()
    return stream


async def _list_stream(deps: Deps, filters: ListFilter, after: str | None) -> JobListStream:
    stream = JobListStream(deps.feeds, stream_tenant(deps), filters, _position(after))
    await stream.open()
    return stream


@router.get(
    "/v1/jobs/{job_id}/stream",
    summary="Follow a job live (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The job's events as they happen."},
        204: {"description": "The job has ended and the client has every event: stop reconnecting."},
        **problem_responses(404, 422, 503),
    },
)
async def job_stream(
    job_id: str, deps: DepsDep, after: AfterQuery = None, last_event_id: LastEventId = None
) -> Response:
    stream = await _job_stream(deps, job_id, last_event_id or after)
    if stream.finished and not stream.backlog:
        await stream.close()
        return Response(status_code=204)
    return _sse(deps, stream.events(), stream.close)


@router.get(
    "/v1/stream",
    summary="Follow the list of jobs live (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Each change of a matching job."},
        **problem_responses(422, 503),
    },
)
async def list_stream(
    deps: DepsDep,
    status: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
    after: AfterQuery = None,
    last_event_id: LastEventId = None,
) -> Response:
    stream = await _list_stream(deps, ListFilter(status=status, kind=kind, tag=tag), last_event_id or after)
    return _sse(deps, stream.events(), stream.close)


@router.websocket("/v1/jobs/{job_id}/ws")
async def job_socket(websocket: WebSocket, job_id: str, after: str | None = None) -> None:
    deps: Deps = websocket.app.state.deps
    try:  # following before the handshake ends: once connected, a client misses nothing
        stream = await _job_stream(deps, job_id, after)
    except AppError as exc:
        await _refuse(websocket, exc)
        return
    await websocket.accept()
    await _pump(websocket, stream.events(), stream.close)


@router.websocket("/v1/ws")
async def list_socket(
    websocket: WebSocket,
    status: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
    after: str | None = None,
) -> None:
    deps: Deps = websocket.app.state.deps
    try:
        listed = await _list_stream(deps, ListFilter(status=status, kind=kind, tag=tag), after)
    except AppError as exc:
        await _refuse(websocket, exc)
        return
    await websocket.accept()
    await _pump(websocket, listed.events(), listed.close)


Close = Callable[[], Awaitable[None]]


def _sse(deps: Deps, events: AsyncIterator[StreamEvent], close: Close) -> EventSourceResponse:
    settings = deps.settings

    async def frames() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(retry=settings.stream_retry_ms, comment="atelier")
            async for event in events:
                yield ServerSentEvent(data=_json(event.data), event=event.event, id=event.id)
        finally:
            await close()

    return EventSourceResponse(
        frames(),
        ping=settings.stream_ping_s,
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        headers=SSE_HEADERS,
        background=BackgroundTask(close),  # also when the client left before the first frame
    )


async def _pump(websocket: WebSocket, events: AsyncIterator[StreamEvent], close: Close) -> None:
    """Send the events until they end or the client goes; a client's messages are ignored."""

    async def send() -> None:
        try:
            async for event in events:
                await websocket.send_text(_json({"id": event.id, "event": event.event, "data": event.data}))
            await websocket.close(1000)
        except AppError as exc:  # the log went away mid-stream: say so, then close
            await _refuse(websocket, exc)

    async def until_gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = {asyncio.create_task(send()), asyncio.create_task(until_gone())}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close()


async def _refuse(websocket: WebSocket, exc: AppError) -> None:
    """A stream that cannot start (or go on): the problem as a message, then a close with
    4000 + status."""
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    status = status_of(exc)
    await websocket.send_text(
        _json({"event": "error", "data": {"code": exc.code, "status": status, "detail": str(exc)}})
    )
    await websocket.close(4000 + status, exc.code)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()
