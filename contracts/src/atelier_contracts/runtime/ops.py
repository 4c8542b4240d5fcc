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
    """A uvicorn server that leaves signals to the process: it stops when told to."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: object, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve an ASGI app until ``stop`` is set."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)  # type: ignore[arg-type]
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


async def serve_ops(
    service: str, version: str, host: str, port: int, checks: Mapping[str, ReadyCheck], stop: asyncio.Event
) -> None:
    app = Starlette(routes=ops_routes(service, version, checks))
    await serve(app, host, port, stop)
