"""Connecting to NATS and making sure Atelier's streams exist with the right settings."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from atelier_contracts.subjects import STREAMS, StreamSpec

log = logging.getLogger(__name__)


async def connect(url: str, name: str) -> Client:
    """Connect with reconnects forever: a NATS restart must not kill a service."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        error_cb=on_error,
    )


def stream_config(spec: StreamSpec) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=spec.subjects,
        retention=RetentionPolicy.WORK_QUEUE if spec.work_queue else RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=spec.duplicate_window_s,
        allow_direct=spec.allow_direct or None,
    )


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
