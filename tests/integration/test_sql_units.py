"""Units of SQL work on SQLite (``SqlUnits``): inline on the event loop unless the database is
locked, then in a worker thread that waits for the lock; nothing lost or doubled either way."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from atelier_contracts.readmodel import UNITS_WAITED, SqlUnits, make_engine
from tests.support import eventually

counters = sa.Table("counters", sa.MetaData(), sa.Column("n", sa.Integer, nullable=False))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "units.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE counters (n INTEGER NOT NULL)")
    return path


def _add(conn: sa.Connection) -> int:
    conn.execute(sa.insert(counters).values(n=1))
    return threading.get_ident()


async def test_an_inline_unit_runs_on_the_event_loop_and_commits(db: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    units = SqlUnits(engine, threads=1, name="t", inline=True)
    try:
        ran_on = await units.run(_add, write=True)
        assert ran_on == threading.get_ident(), "on the loop's thread"
        assert (
            await units.run(
                lambda c: c.execute(sa.select(sa.func.count()).select_from(counters)).scalar(), write=False
            )
            == 1
        )
    finally:
        units.close()
        await engine.dispose()


async def test_a_locked_database_sends_the_unit_to_a_thread_that_waits_for_the_lock(db: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    units = SqlUnits(engine, threads=1, name="t", inline=True)
    holder = sqlite3.connect(db, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
    before = UNITS_WAITED.labels("locked")._value.get()
    try:
        unit = asyncio.create_task(units.run(_add, write=True))

        async def sent_to_the_thread() -> bool:
            return bool(UNITS_WAITED.labels("locked")._value.get() == before + 1)

        await eventually(sent_to_the_thread, within=10.0)  # the inline attempt fails at once
        assert not unit.done(), "it waits for the lock, it does not fail"
        holder.rollback()
        ran_on = await asyncio.wait_for(unit, 10.0)
        assert ran_on != threading.get_ident()
        rows = holder.execute("SELECT count(*) FROM counters").fetchone()
        assert rows == (1,), "the failed inline attempt left nothing; the thread's wrote once"
    finally:
        holder.close()
        units.close()
        await engine.dispose()
