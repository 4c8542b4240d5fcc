"""The deadline sweeper: asks for ``ExpireDeadlines`` on every job whose deadline has passed.

It runs in every orchestrator replica; the command's message id is derived from the job and
the deadline, so JetStream keeps one of the replicas' identical requests, and ``decide`` makes
a repeated one a no-op. A job never stays running past its deadline, also across restarts:
the deadline lives in the read model, not in a timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from atelier_contracts.commands import Command, ExpireDeadlines
from atelier_contracts.envelope import Envelope
from atelier_contracts.runtime.service import every

log = logging.getLogger(__name__)


def own_command(msg_id: str, job_id: str, tenant: str, now: datetime, body: Command) -> Envelope[Command]:
    """A command the orchestrator sends itself. Every replica sends the same one, under a message
    id derived from what it is about, so JetStream keeps one and ``decide`` makes a repeat a no-op."""
    return Envelope[Command](
        msg_id=msg_id,
        job_id=job_id,
        tenant=tenant,
        correlation_id=msg_id,
        causation_id=None,
        sent_at=now,
        body=body,
    )


class Deadlines(Protocol):
    async def due(self, now: datetime, limit: int) -> list[tuple[str, str, datetime]]: ...


class DeadlineSweeper:
    def __init__(
        self,
        deadlines: Deadlines,
        send: Callable[[Envelope[Command]], Awaitable[None]],
        clock: Callable[[], datetime],
        interval_s: float = 2.0,
        batch: int = 500,
    ) -> None:
        self.deadlines = deadlines
        self.send = send
        self.clock = clock
        self.interval_s = interval_s
        self.batch = batch

    async def sweep_once(self) -> int:
        now = self.clock()
        due = await self.deadlines.due(now, self.batch)
        for job_id, tenant, deadline in due:
            await self.send(
                own_command(f"expire.{job_id}.{deadline.isoformat()}", job_id, tenant, now, ExpireDeadlines())
            )
        return len(due)

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval_s, self.sweep_once, stop, "deadline sweep")
