"""Connecting to NATS and making sure Atelier's streams exist with the right settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from atelier_contracts.progress import PROGRESS_BUCKET, PROGRESS_TTL_S
from atelier_contracts.subjects import (
    AUDIO_CACHE_BUCKET,
    BUDGETS_BUCKET,
    CANCELLED_BUCKET,
    CANCELLED_TTL_S,
    LIMITS_BUCKET,
    PROVIDERS_BUCKET,
    STREAMS,
    VARIANTS_BUCKET,
    VARIANTS_TTL_S,
    StreamSpec,
)

log = logging.getLogger(__name__)


async def connect(url: str, name: str, startup_timeout_s: float = 30.0) -> Client:
    """Connect, then reconnect forever: a NATS restart must not kill a running service.

    The first connection is bounded by ``startup_timeout_s`` (nats-py would otherwise retry it
    forever too), so a service that cannot reach NATS at start-up fails loudly.
    """

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async with asyncio.timeout(startup_timeout_s):
        return await nats.connect(
            url,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
            error_cb=on_error,
        )


async def close_quietly(nc: Client, timeout_s: float = 5.0) -> None:
    """Drain and close, leaving nothing running; a dead socket must not stop a shutdown.

    Draining needs a live connection: while NATS is down it fails at once, and the client is
    closed instead, which ends its reconnect loop. Each step is bounded by ``timeout_s``, except
    that a drain cut short still flushes (nats-py's own 10 s limit) before it gives up.
    """
    try:
        await asyncio.wait_for(nc.drain(), timeout_s)
    except Exception as exc:  # nats-py raises assorted errors draining a broken connection
        log.warning("draining the nats connection failed, closing it: %s: %s", type(exc).__name__, exc)
    await _close_for_good(nc, timeout_s)


async def _close_for_good(nc: Client, timeout_s: float) -> None:
    """Close, and cancel nats-py's reconnect task until it and any successor have ended.

    ``close()`` cancels that task once, but on Python 3.11 ``asyncio.wait_for`` loses a cancel
    that arrives as the connect attempt it wraps ends (the attempt's outcome wins). After a
    failed attempt the loop retries forever, and whoever waits for its tasks (an event loop
    shutting down) hangs; after a successful one it marks the closed client connected again, and
    losing that socket starts a new reconnect task. The loop does not look at the closed state, so
    only further closes and cancels end it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        task: asyncio.Task[None] | None = getattr(nc, "_reconnection_task", None)
        if not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), max(deadline - loop.time(), 0.05))
            except Exception as exc:
                log.warning("closing the nats connection failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(0.05)
        elif task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.05)
        else:
            return
    log.warning("the nats connection did not close within %.0f s", timeout_s)


def ready_check(nc: Client) -> Callable[[], Awaitable[None]]:
    """A readiness probe: connected, and the server answers a round trip."""

    async def check() -> None:
        if not nc.is_connected:
            raise ConnectionError(f"nats is {'reconnecting' if nc.is_reconnecting else 'disconnected'}")
        await nc.flush(timeout=1)

    return check


def stream_config(spec: StreamSpec) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=spec.subjects,
        retention=RetentionPolicy.WORK_QUEUE if spec.work_queue else RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=spec.duplicate_window_s,
        allow_direct=spec.allow_direct or None,
        max_age=spec.max_age_s,
    )


async def _bucket(
    js: JetStreamContext, name: str, ttl: float | None = None, direct: bool = False
) -> KeyValue:
    """The KV bucket ``name``, created (one value per key) if missing."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=name, ttl=ttl, history=1, direct=direct)


async def cancelled_jobs(js: JetStreamContext) -> KeyValue:
    """The KV bucket of cancelled job ids."""
    return await _bucket(js, CANCELLED_BUCKET, ttl=CANCELLED_TTL_S)


async def rate_limits(js: JetStreamContext) -> KeyValue:
    """The KV bucket of shared rate-limit token buckets and concurrency leases."""
    return await _bucket(js, LIMITS_BUCKET, ttl=3600)


async def provider_states(js: JetStreamContext) -> KeyValue:
    """The KV bucket of provider circuit-breaker states."""
    return await _bucket(js, PROVIDERS_BUCKET)


async def budgets(js: JetStreamContext) -> KeyValue:
    """The KV bucket of budget limits and spend per tenant and project."""
    return await _bucket(js, BUDGETS_BUCKET)


async def audio_cache(js: JetStreamContext) -> KeyValue:
    """The KV bucket of cached narrations (``AUDIO_CACHE_BUCKET``): pruned by the router, by age."""
    return await _bucket(js, AUDIO_CACHE_BUCKET)


async def progress_bucket(js: JetStreamContext) -> KeyValue:
    """The KV bucket of running steps' latest progress (``atelier_contracts.progress``)."""
    return await _bucket(js, PROGRESS_BUCKET, ttl=PROGRESS_TTL_S, direct=True)  # read in batches


async def variants(js: JetStreamContext) -> KeyValue:
    """The KV bucket of rendered variants (``VARIANTS_BUCKET``)."""
    return await _bucket(js, VARIANTS_BUCKET, ttl=VARIANTS_TTL_S)


async def ensure_streams(js: JetStreamContext) -> None:
    """Create each stream, or bring an existing one to its spec. Safe to run concurrently."""
    for spec in STREAMS:
        config = stream_config(spec)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
                continue
            except nats.js.errors.BadRequestError:
                pass  # another process created it between our two calls
        await js.update_stream(config)
