"""Read-model queries with SQLAlchemy Core on the tables the orchestrator's projector writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from atelier_contracts.readmodel import assets, job_events, jobs
from atelier_contracts.snapshot import JobSnapshot, snapshot_decoder
from atelier_gateway.app.errors import Unavailable
from atelier_gateway.app.ports import StoredAsset, StoredEvent

# Connection trouble, not query bugs: a wrong query should surface as a 500 with its traceback.
_UNAVAILABLE = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)


class SqlJobReader:
    def __init__(self, engine: AsyncEngine, timeout_s: float = 5.0) -> None:
        self.engine = engine
        self.timeout_s = timeout_s

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with asyncio.timeout(self.timeout_s), self.engine.connect() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise Unavailable("The read model (SQL) is unreachable; try again.") from exc

    async def ping(self) -> None:
        async with self._connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def job(self, tenant: str, job_id: str) -> JobSnapshot | None:
        query = sa.select(jobs.c.snapshot).where(jobs.c.id == job_id, jobs.c.tenant == tenant)
        async with self._connect() as conn:
            raw = (await conn.execute(query)).scalar_one_or_none()
        return None if raw is None else snapshot_decoder.decode(raw)

    async def jobs(
        self, tenant: str, *, statuses: list[str], kinds: list[str], limit: int
    ) -> list[JobSnapshot]:
        query = sa.select(jobs.c.snapshot).where(jobs.c.tenant == tenant)
        if statuses:
            query = query.where(jobs.c.status.in_(statuses))
        if kinds:
            query = query.where(jobs.c.kind.in_(kinds))
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return [snapshot_decoder.decode(raw) for raw in rows]

    async def events(self, tenant: str, job_id: str) -> list[StoredEvent] | None:
        exists = sa.select(jobs.c.id).where(jobs.c.id == job_id, jobs.c.tenant == tenant)
        query = (
            sa.select(job_events)
            .where(job_events.c.job_id == job_id)
            .order_by(job_events.c.seq, job_events.c.idx)
        )
        async with self._connect() as conn:
            if (await conn.execute(exists)).first() is None:
                return None
            rows = (await conn.execute(query)).all()
        return [
            StoredEvent(
                event_id=row.event_id,
                seq=row.seq,
                index=row.idx,
                type=row.type,
                at=_utc(row.at),
                data=msgspec.json.decode(row.data),
            )
            for row in rows
        ]

    async def asset(self, tenant: str, asset_id: str) -> StoredAsset | None:
        query = (
            sa.select(assets)
            .join(jobs, jobs.c.id == assets.c.job_id)
            .where(assets.c.id == asset_id, jobs.c.tenant == tenant)
        )
        async with self._connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return StoredAsset(
            id=row.id,
            job_id=row.job_id,
            step=row.step,
            name=row.name,
            kind=row.kind,
            content_type=row.content_type,
            blob_key=row.blob_key,
            size=row.size,
        )


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the projector writes is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
