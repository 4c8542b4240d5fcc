"""Sessions as the orchestrator's session projector writes them (``sessions``: the state as JSON)."""

from __future__ import annotations

import msgspec
import sqlalchemy as sa

from atelier_contracts.readmodel import sessions
from atelier_contracts.sessions import SessionView
from atelier_gateway.adapters.sql import SqlAdapter

_view = msgspec.json.Decoder(SessionView)


class SqlSessionReader(SqlAdapter):
    async def session(self, tenant: str, session_id: str) -> SessionView | None:
        query = sa.select(sessions.c.state).where(sessions.c.id == session_id, sessions.c.tenant == tenant)
        async with self._connect() as conn:
            state = (await conn.execute(query)).scalar_one_or_none()
        return _view.decode(state) if state is not None else None

    async def sessions(self, tenant: str, status: str | None, limit: int) -> list[SessionView]:
        """The tenant's sessions, newest first."""
        query = sa.select(sessions.c.state).where(sessions.c.tenant == tenant)
        if status is not None:
            query = query.where(sessions.c.status == status)
        query = query.order_by(sessions.c.created_at.desc(), sessions.c.id.desc()).limit(limit)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return [_view.decode(state) for state in rows]
