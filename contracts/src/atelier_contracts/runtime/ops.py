"""Ops endpoints every service serves: ``/health``, ``/ready``, ``/version``, ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

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


KEEP_ALIVE_S = 75
"""As long as nginx's default: idle client connections stay open this long."""


async def serve(app: ASGIApp, host: str, port: int, stop: asyncio.Event, grace_s: float = 10.0) -> bool:
    """Serve an ASGI app until ``stop`` is set. False when the server could not start (port taken)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
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
