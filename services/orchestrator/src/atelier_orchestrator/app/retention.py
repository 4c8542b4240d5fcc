"""Retention: exports expire, and blobs nothing refers to any more are released, on a schedule.

Every replica runs it. An expired export is deleted with a ``DeleteJob`` whose message id is
derived from the job, so JetStream keeps one of the replicas' identical requests and a repeated
one decides nothing; the deleted job's files go in a later round of the blob clean-up, once the
tombstone is projected and the grace period has passed (a blob still being written, or the input
of work in flight, is younger than that).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from atelier_contracts.commands import Command, DeleteJob
from atelier_contracts.envelope import Envelope
from atelier_contracts.runtime.service import every
from atelier_orchestrator.app.sweeper import own_command

log = logging.getLogger(__name__)

EXPIRING_KINDS = ("export",)


class Finished(Protocol):
    async def finished_before(
        self, kinds: tuple[str, ...], cutoff: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """``(job_id, tenant)`` of live jobs of these kinds that ended before ``cutoff``."""
        ...


class Retention:
    def __init__(
        self,
        finished: Finished,
        send: Callable[[Envelope[Command]], Awaitable[None]],
        release_blobs: Callable[[], Awaitable[int]],
        clock: Callable[[], datetime],
        export_ttl_s: float,
        interval_s: float,
        batch: int = 500,
    ) -> None:
        self.finished = finished
        self.send = send
        self.release_blobs = release_blobs
        self.clock = clock
        self.export_ttl_s = export_ttl_s
        self.interval_s = interval_s
        self.batch = batch

    async def expire_once(self) -> int:
        now = self.clock()
        due = await self.finished.finished_before(
            EXPIRING_KINDS, now - timedelta(seconds=self.export_ttl_s), self.batch
        )
        for job_id, tenant in due:
            await self.send(own_command(f"expire-export.{job_id}", job_id, tenant, now, DeleteJob()))
        if due:
            log.info("expired exports deleted", extra={"jobs": len(due)})
        return len(due)

    async def once(self) -> int:
        expired = await self.expire_once()
        released = await self.release_blobs()
        return expired + released

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval_s, self.once, stop, "retention")
