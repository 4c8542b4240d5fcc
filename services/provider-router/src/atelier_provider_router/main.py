"""``atelier-provider-router``: serves the ``ai`` work pool over the configured providers.

The capability matrix comes from ``ATELIER_PROVIDERS_FILE`` (default: the built-in offline
matrix). It is validated at start-up — an invalid file stops the service with the reasons —
and re-read when it changes (every ``ATELIER_PROVIDERS_RELOAD_S``); an invalid new version is
logged and the running one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from nats.aio.client import Client

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.runtime.nats import provider_states, rate_limits
from atelier_contracts.runtime.worker_main import WorkerSettings, WorkerSetup, main_for
from atelier_provider_router.adapters.ratelimit import KvRateLimiter
from atelier_provider_router.adapters.registry import build_providers
from atelier_provider_router.app.capabilities import handlers
from atelier_provider_router.app.matrix import DEFAULT_FILE, MatrixError, load
from atelier_provider_router.app.router import Router

log = logging.getLogger(__name__)


def matrix_file() -> Path:
    return Path(os.environ.get("ATELIER_PROVIDERS_FILE") or DEFAULT_FILE)


def setup(blobs: FileBlobStore, settings: WorkerSettings, nc: Client) -> WorkerSetup:
    path = matrix_file()
    try:
        matrix = load(path)
    except MatrixError as exc:
        print(f"atelier-provider-router: invalid provider configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    limiter = KvRateLimiter(lambda: rate_limits(nc.jetstream()))
    router = Router(matrix, build_providers(matrix), limiter=limiter)
    replica = f"{socket.gethostname()}:{os.getpid()}"

    async def publish_states(stop: asyncio.Event) -> None:
        """Keep the API's view of the breakers current: on every change, and every few seconds."""
        kv = await provider_states(nc.jetstream())
        published: dict[str, dict[str, object]] = {}
        while not stop.is_set():
            now_mono, now_wall = time.monotonic(), time.time()
            for name, state in router.breakers.snapshot(now_mono).items():
                if state != published.get(name):
                    entry = {**state, "until": now_wall + float(state["remaining_s"]), "by": replica}  # type: ignore[arg-type]
                    await kv.put(name, json.dumps(entry).encode())
                    published[name] = state
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(router.changed.wait(), 1.0)
            router.changed.clear()

    every = float(os.environ.get("ATELIER_PROVIDERS_RELOAD_S", "5"))

    async def reload(stop: asyncio.Event) -> None:
        seen = path.stat().st_mtime
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            mtime = path.stat().st_mtime if path.exists() else seen
            if mtime == seen:
                continue
            seen = mtime
            try:
                new = load(path)
            except MatrixError as exc:
                log.error("provider configuration not reloaded, keeping the running one: %s", exc)
                continue
            router.reload(new, build_providers(new))
            log.info("provider configuration reloaded", extra={"file": str(path)})

    return WorkerSetup(handlers=handlers(router, blobs), background=[reload, publish_states])


def main() -> None:
    main_for("provider-router", "atelier-provider-router", "ai", 8082, setup)


if __name__ == "__main__":
    main()
