"""The read models of sessions and schedules: one row per aggregate, its state as JSON (the
public view decodes from it), written by the orchestrator's projectors."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_gateway.adapters.sql import SqlAdapter

V = TypeVar("V")


class SqlDocuments(SqlAdapter, Generic[V]):
    def __init__(self, engine: AsyncEngine, table: sa.Table, view: type[V], gone: str | None = None) -> None:
        super().__init__(engine)
        self.table = table
        self.decoder = msgspec.json.Decoder(view)
        self.gone = gone
        """A status (a deleted schedule's) whose rows the API no longer shows."""

    def _visible(self, tenant: str) -> sa.ColumnElement[bool]:
        t = self.table
        return sa.and_(t.c.tenant == tenant, t.c.status != self.gone) if self.gone else t.c.tenant == tenant

    async def get(self, tenant: str, key: str) -> V | None:
        query = sa.select(self.table.c.state).where(self.table.c.id == key, self._visible(tenant))
        async with self._connect() as conn:
            state = (await conn.execute(query)).scalar()
        return self.decoder.decode(state) if state is not None else None

    async def newest(self, tenant: str, status: str | None, limit: int) -> list[V]:
        """The tenant's, newest first."""
        t = self.table
        query = sa.select(t.c.state).where(self._visible(tenant))
        if status is not None:
            query = query.where(t.c.status == status)
        query = query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return [self.decoder.decode(state) for state in rows]
