"""Finds what is due in the read models: live jobs past a deadline, schedules past a fire time,
jobs past their retention."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.readmodel import jobs, schedules
from atelier_contracts.snapshot import JobStatus


class SqlDeadlines:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def due(self, now: datetime, limit: int) -> list[tuple[str, str, datetime]]:
        """``(job_id, tenant, deadline)`` of live jobs due at ``now``, the most overdue first."""
        query = (
            sa.select(jobs.c.id, jobs.c.tenant, jobs.c.next_deadline_at)
            .where(jobs.c.next_deadline_at <= now, jobs.c.deleted.is_(False))
            .order_by(jobs.c.next_deadline_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [(r.id, r.tenant, r.next_deadline_at) for r in await conn.execute(query)]


class SqlDueSchedules:
    """Active schedules whose next fire time has passed, in the schedules read model."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def due(self, now: datetime, limit: int) -> list[tuple[str, str, datetime]]:
        """``(schedule_id, tenant, next_fire_at)``, the most overdue first."""
        query = (
            sa.select(schedules.c.id, schedules.c.tenant, schedules.c.next_fire_at)
            .where(schedules.c.status == "active", schedules.c.next_fire_at <= now)
            .order_by(schedules.c.next_fire_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(query))
        # SQLite hands back naive datetimes: they are UTC, as written.
        return [(r.id, r.tenant, r.next_fire_at.replace(tzinfo=r.next_fire_at.tzinfo or UTC)) for r in rows]


class SqlFinished:
    """Jobs that ended, by kind and the time of their last change, in the jobs read model."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def finished_before(
        self, kinds: tuple[str, ...], cutoff: datetime, limit: int
    ) -> list[tuple[str, str]]:
        query = (
            sa.select(jobs.c.id, jobs.c.tenant)
            .where(
                jobs.c.status.in_(JobStatus.TERMINAL),
                jobs.c.kind.in_(kinds),
                jobs.c.updated_at < cutoff,  # a job that ended changes no more: this is its end
                jobs.c.deleted.is_(False),
            )
            .order_by(jobs.c.updated_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [(r.id, r.tenant) for r in await conn.execute(query)]
