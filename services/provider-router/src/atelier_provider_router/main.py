"""``atelier-provider-router``: serves the ``ai`` work pool over the configured providers.

The capability matrix comes from ``ATELIER_PROVIDERS_FILE`` (default: the built-in offline
matrix). It is validated at start-up — an invalid file stops the service with the reasons —
and re-read when it changes (every ``ATELIER_PROVIDERS_RELOAD_S``); an invalid new version is
logged and the running one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nats.aio.client import Client

from atelier_contracts.blobstore import Blobs
from atelier_contracts.runtime.audiocache import KvAudioCache
from atelier_contracts.runtime.nats import audio_cache, budgets, provider_states, rate_limits
from atelier_contracts.runtime.service import every
from atelier_contracts.runtime.worker_main import WorkerSettings, WorkerSetup, main_for
from atelier_provider_router.adapters.breaker_sync import BreakerSync
from atelier_provider_router.adapters.budgets import KvBudgets
from atelier_provider_router.adapters.ratelimit import KvLeases, KvRateLimiter
from atelier_provider_router.adapters.registry import build_providers
from atelier_provider_router.app.capabilities import handlers
from atelier_provider_router.app.gate import Gate
from atelier_provider_router.app.matrix import DEFAULT_FILE, MatrixError, load
from atelier_provider_router.app.router import Router

log = logging.getLogger(__name__)


def matrix_file() -> Path:
    return Path(os.environ.get("ATELIER_PROVIDERS_FILE") or DEFAULT_FILE)


def shared_gate(nc: Client) -> Gate:
    """Limits and budgets kept in NATS KV, so that every replica of the router sees the same."""
    js = nc.jetstream()
    return Gate(
        limiter=KvRateLimiter(lambda: rate_limits(js)),
        leases=KvLeases(lambda: rate_limits(js)),
        budgets=KvBudgets(lambda: budgets(js), lambda: rate_limits(js)),
    )


def setup(blobs: Blobs, settings: WorkerSettings, nc: Client) -> WorkerSetup:
    path = matrix_file()
    try:
        matrix = load(path)
    except MatrixError as exc:
        print(f"atelier-provider-router: invalid provider configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    router = Router(matrix, build_providers(matrix), gate=shared_gate(nc))
    replica = f"{socket.gethostname()}:{os.getpid()}"
    # Breaker trips and recoveries shared with the other replicas (and shown by the API).
    breaker_sync = BreakerSync(
        router,
        lambda: provider_states(nc.jetstream()),
        replica,
        reconnects=lambda: int(nc.stats["reconnects"]),
    )

    reload_every_s = float(os.environ.get("ATELIER_PROVIDERS_RELOAD_S", "5"))

    async def reload(stop: asyncio.Event) -> None:
        seen = path.stat().st_mtime
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), reload_every_s)
            await router.reap()  # adapters an earlier reload retired, once their calls have ended
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

    cache = KvAudioCache(lambda: audio_cache(nc.jetstream()))
    ttl_s = float(os.environ.get("ATELIER_AUDIO_CACHE_TTL_S", str(30 * 86400)))
    prune_every_s = float(os.environ.get("ATELIER_AUDIO_CACHE_PRUNE_EVERY_S", "3600"))

    async def prune() -> int:
        pruned = await cache.prune(datetime.now(UTC) - timedelta(seconds=ttl_s))
        if pruned:
            log.info("narration cache pruned", extra={"entries": pruned})
        return pruned

    async def pruning(stop: asyncio.Event) -> None:
        await every(prune_every_s, prune, stop, "narration cache prune")

    return WorkerSetup(
        handlers=handlers(router, blobs, audio_cache=cache),
        background=[reload, pruning, *breaker_sync.parts],
        cleanup=[router.aclose],  # the adapters' HTTP connection pools
    )


def main() -> None:
    main_for("provider-router", "atelier-provider-router", "ai", 8082, setup)


if __name__ == "__main__":
    main()
