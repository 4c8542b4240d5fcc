"""``atelier-gateway``: serve the HTTP API until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable
from typing import TypeVar

from atelier_contracts.runtime import logs, ops, service, telemetry
from atelier_contracts.runtime.service import install_stop_signals
from atelier_gateway import bootstrap
from atelier_gateway.config import ConfigError, Settings
from atelier_gateway.entrypoints.http import create_app

log = logging.getLogger(__name__)

T = TypeVar("T")


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None (``work`` cancelled) if ``stop`` is set first."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


async def serve(settings: Settings) -> bool:
    """Serve until a stop signal; False when the gateway could not start."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with contextlib.AsyncExitStack() as stack:
        # Dependencies are built here rather than in uvicorn's lifespan, so a stop signal can
        # interrupt a start-up that is still waiting for NATS.
        try:
            deps = await _unless_stopped(stack.enter_async_context(bootstrap.build(settings)), stop)
        except TimeoutError:
            log.error("NATS or SQL did not answer within %ss of start-up", settings.startup_timeout_s)
            return False
        if deps is None:
            log.info("stopped before start-up finished")
            return True
        app = create_app(settings, build_deps=lambda _: contextlib.nullcontext(deps))
        # Open streams end at a stop (their clients resume elsewhere), or the server's graceful
        # shutdown would wait for them its whole grace period.
        ending = asyncio.create_task(_end_streams(stop, deps))
        try:
            return await ops.serve(
                app, settings.http_host, settings.http_port, stop, header_timeout_s=settings.header_timeout_s
            )
        finally:
            ending.cancel()


async def _end_streams(stop: asyncio.Event, deps: bootstrap.Deps) -> None:
    await stop.wait()
    await deps.feeds.close()


def main() -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"atelier-gateway: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.setup("gateway", settings.log_level)
    telemetry.setup("gateway")
    if not service.run(serve(settings)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
