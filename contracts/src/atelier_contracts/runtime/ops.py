"""Ops endpoints every service serves: ``/health``, ``/ready``, ``/version``, ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ReadyCheck = Callable[[], Awaitable[None]]
"""Raises when a dependency is not reachable."""

log = logging.getLogger(__name__)


async def run_checks(checks: Mapping[str, ReadyCheck], limit_s: float = 2.0) -> dict[str, str]:
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), limit_s)
            results[name] = "ok"
        except Exception as exc:  # a readiness probe reports every failure, whatever it is
            results[name] = f"error: {type(exc).__name__}: {exc}"[:200]
    return results


def ops_routes(service: str, version: str, checks: Mapping[str, ReadyCheck]) -> list[Route]:
    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": service})

    async def ready(_: Request) -> Response:
        results = await run_checks(checks)
        ok = all(v == "ok" for v in results.values())
        body = {"status": "ready" if ok else "not_ready", "checks": results}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def version_(_: Request) -> Response:
        return JSONResponse({"service": service, "version": version})

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/health", health),
        Route("/ready", ready),
        Route("/version", version_),
        Route("/metrics", metrics),
    ]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the process's stop event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would otherwise take SIGTERM/SIGINT and re-raise them after shutting down.
        yield


HEADER_TIMEOUT_S = 10.0
"""The deadline for a request's headers; the gateway's is ``ATELIER_HEADER_TIMEOUT_S``."""


class _HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's protocol, with a deadline for a request's headers: from the connection (or the
    first byte of the next request on it) to the end of the headers. uvicorn has none, so a
    client that sends its headers a byte at a time, or nothing at all, would hold the
    connection forever. Past the deadline: 408 and the connection closed."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_deadline()  # pipelined: answer the request in flight first
            return
        body = json.dumps(
            {
                "type": "urn:atelier:error:request_timeout",
                "title": "Request timeout",
                "status": 408,
                "detail": f"The request's headers did not arrive within {self.header_timeout_s:g} s.",
                "code": "request_timeout",
            },
            separators=(",", ":"),
        ).encode()
        head = (
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


KEEP_ALIVE_S = 75
"""As long as nginx's default: idle client connections stay open this long."""


async def serve(
    app: ASGIApp,
    host: str,
    port: int,
    stop: asyncio.Event,
    grace_s: float = 10.0,
    header_timeout_s: float = HEADER_TIMEOUT_S,
) -> bool:
    """Serve an ASGI app until ``stop`` is set. False when the server could not start (port taken)."""
    protocol = type("HttpProtocol", (_HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s})
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        # websockets' own sans-I/O protocol: uvicorn's "auto" picks the legacy one, deprecated.
        ws="websockets-sansio",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(grace_s),
        # Longer than clients keep idle connections (httpx: 5 s, browsers more), so a client does
        # not send a request on a connection the server is closing at that very moment.
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = _Server(config)

    async def run() -> bool:
        try:
            await server.serve()
        except SystemExit:  # uvicorn's way of saying it could not start; it logged why
            return False
        return True

    serving = asyncio.create_task(run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    server.should_exit = True  # finishes open requests, bounded by the grace period
    return await serving


async def serve_ops(
    service: str, version: str, host: str, port: int, checks: Mapping[str, ReadyCheck], stop: asyncio.Event
) -> None:
    app = Starlette(routes=ops_routes(service, version, checks))
    if not await serve(app, host, port, stop):
        raise RuntimeError(f"{service}: the ops endpoint could not listen on {host}:{port}")
