"""What every SQL adapter shares: bounded connections, and outages reported as ``Unavailable``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from atelier_contracts.readmodel import SqlUnits
from atelier_gateway.app.errors import Unavailable

# Connection trouble, not query bugs: a wrong query should surface as a 500 with its traceback.
_UNAVAILABLE = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)


T = TypeVar("T")


class SqlAdapter:
    def __init__(self, engine: AsyncEngine, timeout_s: float = 5.0) -> None:
        self.engine = engine
        self.timeout_s = timeout_s
        self._units: SqlUnits | None = None

    async def _read(self, query: Callable[[sa.Connection], T]) -> T:
        """Run ``query`` (several statements) as one unit (see ``SqlUnits``)."""
        if self._units is None:
            self._units = SqlUnits(self.engine, threads=4, name="sql-read", inline=True)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._units.run(query, write=False)
        except _UNAVAILABLE as exc:
            raise Unavailable("The database (SQL) is unreachable; try again.") from exc

    def close(self) -> None:
        if self._units is not None:
            self._units.close()

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with asyncio.timeout(self.timeout_s), self.engine.connect() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise Unavailable("The database (SQL) is unreachable; try again.") from exc

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        """A transaction, committed when the block ends without an error."""
        try:
            async with asyncio.timeout(self.timeout_s), self.engine.begin() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise Unavailable("The database (SQL) is unreachable; try again.") from exc


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything written is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
