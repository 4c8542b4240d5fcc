"""Units of SQL work on SQLite (``SqlUnits``): inline on the event loop unless the database is
locked, then in a worker thread that waits for the lock; nothing lost or doubled either way."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from atelier_contracts.readmodel import UNITS_WAITED, SqlUnits, execute_many, fetch_all, make_engine
from tests.support import eventually

counters = sa.Table("counters", sa.MetaData(), sa.Column("n", sa.Integer, nullable=False))
_ADD_MANY = sa.insert(counters)


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


def _add_many(conn: sa.Connection) -> int:
    assert execute_many(conn, _ADD_MANY, [{"n": 1}]) == 1
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


@pytest.mark.parametrize("add", [_add, _add_many], ids=["execute", "execute_many"])
async def test_a_locked_database_sends_the_unit_to_a_thread_that_waits_for_the_lock(
    db: Path, add: Callable[[sa.Connection], int]
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    units = SqlUnits(engine, threads=1, name="t", inline=True)
    holder = sqlite3.connect(db, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
    before = UNITS_WAITED.labels("locked")._value.get()
    try:
        unit = asyncio.create_task(units.run(add, write=True))

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


typed = sa.Table(
    "typed",
    sa.MetaData(),
    sa.Column("id", sa.String(8), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
)
_INSERT_TYPED = sa.insert(typed)
_RENAME = sa.update(typed).where(typed.c.id == sa.bindparam("v_id")).values(note=sa.bindparam("v_note"))


def test_the_sqlite_fast_path_writes_and_reads_as_sqlalchemy_does_and_raises_what_it_raises(
    tmp_path: Path,
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'typed.db'}")
    typed.metadata.create_all(engine)
    at = datetime(2026, 12, 4, 18, 30, 1, 123456, tzinfo=UTC)
    row = {"at": at, "tags": ["a", "b"], "flag": True, "note": None}
    try:
        with engine.begin() as conn:
            conn.execute(_INSERT_TYPED, [{"id": "by-sa"} | row])
            assert execute_many(conn, _INSERT_TYPED, [{"id": "fast-1"} | row, {"id": "fast-2"} | row]) == 2
            renames = [{"v_id": "fast-1", "v_note": "x"}, {"v_id": "gone", "v_note": "y"}]
            renamed = execute_many(conn, _RENAME, renames)
            assert renamed == 1, "the rows it changed, not the rows it was given"
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT id, at, tags, flag, note FROM typed ORDER BY id").all()
            read = {r.id: r for r in conn.execute(sa.select(typed))}
        assert [tuple(r[1:4]) for r in stored] == [tuple(stored[0][1:4])] * 3, "as SQLAlchemy stores them"
        assert (read["fast-2"].tags, read["fast-2"].flag, read["fast-1"].note) == (["a", "b"], True, "x")
        assert read["fast-2"].at.replace(tzinfo=UTC) == at
        with engine.connect() as conn:
            by_id = sa.select(typed.c.id, typed.c.note).where(typed.c.id == sa.bindparam("id"))
            assert fetch_all(conn, by_id, {"id": "fast-1"}) == [("fast-1", "x")]
            with pytest.raises(ValueError, match="converted as it is read"):
                fetch_all(conn, sa.select(typed.c.at).where(typed.c.id == sa.bindparam("id")), {"id": "x"})
            with pytest.raises(ValueError, match="an IN list"):
                fetch_all(conn, sa.select(typed.c.id).where(typed.c.id.in_(["a", "b"])), {})
            with pytest.raises(ValueError, match="a value of its own"):
                fetch_all(conn, sa.select(typed.c.id).where(typed.c.id == "a"), {})
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            execute_many(conn, _INSERT_TYPED, [{"id": "fresh"} | row, {"id": "by-sa"} | row])
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(typed)).scalar()
            assert count == 3, "the batch was rolled back whole"
    finally:
        engine.dispose()
