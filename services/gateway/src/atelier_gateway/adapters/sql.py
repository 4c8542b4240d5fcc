"""What every SQL adapter shares: bounded connections, and outages reported as ``Unavailable``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from atelier_contracts.readmodel import make_sync_engine
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
        self._sync: sa.Engine | None = None
        self._threads: ThreadPoolExecutor | None = None

    async def _read(self, query: Callable[[sa.Connection], T]) -> T:
        """Run ``query`` (several statements) as one unit. On SQLite that is one hop to a worker
        thread with a synchronous connection, not a hop through aiosqlite per statement; elsewhere
        it runs on the async connection."""
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.engine.dialect.name != "sqlite":
                    async with self.engine.connect() as conn:
                        return await conn.run_sync(query)
                if self._sync is None:
                    self._sync = make_sync_engine(self.engine.url.set(drivername="sqlite"))
                    self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sql-read")
                return await asyncio.get_running_loop().run_in_executor(self._threads, self._run, query)
        except _UNAVAILABLE as exc:
            raise Unavailable("The database (SQL) is unreachable; try again.") from exc

    def _run(self, query: Callable[[sa.Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            return query(conn)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
        if self._threads is not None:
            self._threads.shutdown(wait=False)

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
