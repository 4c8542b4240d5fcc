"""Uploads ingested on request: the gateway staged the bytes, this makes them safe and stores them.

Served over core NATS (``INGEST_SUBJECT``, one queue group for every replica): the client holds
its HTTP request open meanwhile, so there is nothing to redeliver — a lost answer is a timeout
the client retries, and a retry stores the same content-addressed blobs again. The staged bytes
are discarded whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from atelier_contracts.blobstore import BlobNotFound, BlobStore, BlobStoreUnavailable
from atelier_contracts.uploads import (
    INGEST_QUEUE,
    INGEST_SUBJECT,
    Ingested,
    IngestRefused,
    IngestReply,
    IngestRequest,
)
from atelier_media.domain.sanitize import CleanImage, Limits, Refused, sanitize

log = logging.getLogger(__name__)

_request = msgspec.json.Decoder(IngestRequest)
_encode = msgspec.json.Encoder().encode


def ingest(blobs: BlobStore, request: IngestRequest, limits: Limits) -> IngestReply:
    """Sanitise the staged upload and store what is safe (runs in a thread: it decodes)."""
    try:
        with blobs.open_staged(request.staged) as source:
            found, clean = sanitize(source, limits)
    except BlobNotFound:
        return IngestRefused(code="upload_empty", status=400, detail="The staged upload is gone.")
    except BlobStoreUnavailable as exc:
        return IngestRefused(code="service_unavailable", status=503, detail=f"{exc}; try again.")
    except Refused as exc:
        return IngestRefused(code=exc.code, status=exc.status, detail=exc.detail)
    finally:
        with contextlib.suppress(OSError):
            blobs.discard_staged(request.staged)
    try:
        original = blobs.put_bytes(clean.data, clean.content_type)
        thumbnail = blobs.put_bytes(clean.thumbnail, "image/webp") if isinstance(clean, CleanImage) else None
    except BlobStoreUnavailable as exc:
        return IngestRefused(code="service_unavailable", status=503, detail=f"{exc}; try again.")
    if isinstance(clean, CleanImage):
        return Ingested(
            kind="image",
            original=original,
            thumbnail=thumbnail,
            format=clean.format,
            source_type=found,
            width=clean.width,
            height=clean.height,
            has_alpha=clean.has_alpha,
        )
    return Ingested(
        kind="audio",
        original=original,
        format=clean.format,
        source_type=found,
        duration_s=round(clean.duration_s, 3),
        sample_rate=clean.sample_rate,
        channels=clean.channels,
    )


class IngestResponder:
    """Answers ingest requests, ``concurrency`` at a time (each decodes a whole image)."""

    def __init__(self, nc: Client, blobs: BlobStore, limits: Limits, concurrency: int = 2) -> None:
        self.nc = nc
        self.blobs = blobs
        self.limits = limits
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def _on_request(self, msg: Msg) -> None:
        # nats-py runs a subscription's callbacks one after another: each request is a task.
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            request = _request.decode(msg.data)
        except msgspec.DecodeError as exc:
            await msg.respond(_encode(IngestRefused(code="validation_failed", status=400, detail=str(exc))))
            return
        started = time.perf_counter()
        async with self._slots:
            try:
                reply = await asyncio.to_thread(ingest, self.blobs, request, self.limits)
            except Exception:
                log.exception("ingest failed", extra={"staged": request.staged})
                reply = IngestRefused(
                    code="internal_error", status=500, detail="The upload could not be ingested."
                )
        log.info(
            "upload ingested" if isinstance(reply, Ingested) else "upload refused",
            extra={
                "staged": request.staged,
                "outcome": reply.code if isinstance(reply, IngestRefused) else reply.format,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        await msg.respond(_encode(reply))

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self.nc.subscribe(INGEST_SUBJECT, queue=INGEST_QUEUE, cb=self._on_request)
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()
            if self._tasks:  # let the requests in hand finish: their clients are waiting
                await asyncio.wait(self._tasks, timeout=30)
