"""Fixtures over real parts: a nats-server per test, a fresh SQL database per test.

SQL tests run on SQLite always, and on PostgreSQL too when ATELIER_TEST_POSTGRES_URL is set
(an asyncpg URL of a server where we may create databases, e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from atelier_devstack.natsserver import NatsServer, start_nats

POSTGRES_URL = os.environ.get("ATELIER_TEST_POSTGRES_URL", "")
SQL_BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]


@pytest.fixture(autouse=True)
def _own_logging() -> Iterator[None]:
    """A command run in-process (``main([...])``) sets the root logger up for its service, on the
    stream pytest captured for that test: put back what was there, for the tests after it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path / "nats", log_file=tmp_path / "nats.log")
    yield server
    server.stop()


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


Databases = Callable[[], Awaitable[str]]


@pytest.fixture(params=SQL_BACKENDS)
async def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Databases]:
    """Makes migrated, empty databases of the backend under test; drops them afterwards."""
    from atelier_orchestrator.adapters.migrate import upgrade

    created: list[str] = []

    async def make() -> str:
        name = f"atelier_t_{uuid.uuid4().hex[:12]}"
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
        else:
            await _pg_admin(f'CREATE DATABASE "{name}"')
            created.append(name)
            url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
        await asyncio.to_thread(upgrade, url)
        return url

    yield make
    for name in created:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(new_database: Databases) -> str:
    """A migrated, empty database of each backend under test."""
    return await new_database()
