"""The SQL read-model schema: written only by the orchestrator's projector, read by the gateway.

Alembic migrations (in the orchestrator) create exactly these tables. ``jobs.last_seq`` is the
stream sequence of the last commit applied, written in the same transaction as the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import sqlalchemy as sa
from msgspec.structs import replace
from prometheus_client import Counter
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler

from atelier_contracts.snapshot import step_view_decoder, view_decoder

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("snapshot", sa.Text, nullable=False),
    sa.Column("next_deadline_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_jobs_tenant_created", "tenant", "created_at"),
    sa.Index("ix_jobs_status", "status"),
    sa.Index("ix_jobs_next_deadline", "next_deadline_at"),
    sa.Index("ix_jobs_tenant_priority", "tenant", "priority"),
)

job_steps = sa.Table(
    "job_steps",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("snapshot", sa.Text, nullable=False),
)
"""One row per step: a commit rewrites the steps it changed, not the whole job (``jobs.snapshot``
holds the rest; rows written before this table carry their steps inline)."""

job_tags = sa.Table(
    "job_tags",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Index("ix_job_tags_tenant_tag", "tenant", "tag"),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(80), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)

assets = sa.Table(
    "assets",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False, index=True),
    sa.Column("step", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("content_type", sa.String(128), nullable=False),
    sa.Column("blob_key", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_assets_blob_key", "blob_key"),
)

provider_calls = sa.Table(
    "provider_calls",
    metadata,
    sa.Column("event_id", sa.String(80), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("capability", sa.String(64), nullable=False),
    sa.Column("step", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error_class", sa.String(32), nullable=False),
    sa.Column("fallback", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("units", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_provider_calls_at", "at"),
    sa.Index("ix_provider_calls_provider", "provider", "at"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # the state as JSON: readers decode SessionView
    sa.Index("ix_sessions_tenant_created", "tenant", "created_at"),
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # the state as JSON: readers decode ScheduleView
    sa.Index("ix_schedules_tenant_created", "tenant", "created_at"),
    sa.Index("ix_schedules_due", "status", "next_fire_at"),
)

READ_MODEL_TABLES = (jobs, job_steps, job_events, assets, job_tags, provider_calls, sessions, schedules)
"""Written only by the orchestrator's projectors; rebuilt exactly from the job, session and
schedule logs."""

# The gateway's own state in the same database (not rebuilt from the log).
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_headers", sa.Text, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_idempotency_expires", "expires_at"),
)

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("blob_key", sa.String(64), nullable=False),
    sa.Column("thumbnail_key", sa.String(64), nullable=True),
    sa.Column("info", sa.Text, nullable=False),  # the media service's ``Ingested``, as JSON
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_uploads_tenant_created", "tenant", "created_at"),
)
"""Sanitised uploads, written by the gateway once the media service ingested them. Their blobs
count as referenced for the blob clean-up."""

studio_templates = sa.Table(
    "studio_templates",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("prompt", sa.String(2000), nullable=False),
    sa.Column("chip", sa.String(48), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
"""A tenant's saved studio prompts ("my white-shoe look"), written by the gateway."""

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("style", sa.String(48), nullable=False),
    sa.Column("review", sa.String(16), nullable=False),
    sa.Column("shot_template", sa.String(1000), nullable=False, server_default="{description}"),
    sa.Column("budget_usd", sa.Float, nullable=True),
    sa.Column("schedule_id", sa.String(64), nullable=True),  # its batch's, in the engine
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_projects_tenant_created", "tenant", "created_at"),
)
episodes = sa.Table(
    "episodes",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("script", sa.Text, nullable=False),
    sa.Column("job_id", sa.String(64), nullable=True),
    sa.Column("package_kinds", sa.Text, nullable=True),  # JSON: the kinds its package holds
    sa.Column("marked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_episodes_project", "project_id", "created_at"),
)
composites = sa.Table(
    "composites",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("episode_id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("render_job", sa.String(64), nullable=False),
    sa.Column("sources", sa.Text, nullable=False),  # JSON: what the render made of every shot
    sa.Column("timeline", sa.Text, nullable=False),  # JSON: the cuts, in order
    sa.Column("exports", sa.Text, nullable=False),  # JSON: every export's job and timeline
    sa.Column("fps", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # every write the next (optimistic)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
"""The anime studio's projects (a style, a review mode, a budget), their episodes (a script, the
job that rendered it last, a package config, a mark for the project's batch) and the episodes'
composites (an editable timeline and its exports), written by the gateway."""

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False, index=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.Text, nullable=False),  # JSON list of event types or patterns
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
"""Where a tenant wants events delivered (the gateway's own state, like the tables below)."""

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # derived from (endpoint, event): one each
    sa.Column("endpoint_id", sa.String(64), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(80), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, delivered, failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),  # few pending, many done
    sa.Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("delivery_id", sa.String(64), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.String(500), nullable=False),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def steps_of(job_ids: Iterable[str]) -> sa.Select[tuple[str, str]]:
    """The step rows of these jobs, in pipeline order."""
    ids = list(job_ids)
    return (
        sa.select(job_steps.c.job_id, job_steps.c.snapshot)
        .where(job_steps.c.job_id.in_(ids))
        .order_by(job_steps.c.job_id, job_steps.c.position)
    )


J = TypeVar("J", bound=msgspec.Struct)
S = TypeVar("S", bound=msgspec.Struct)


def assemble(
    raw_jobs: Iterable[tuple[str, str]],
    step_rows: Iterable[tuple[str, str]],
    job_decoder: msgspec.json.Decoder[J] = view_decoder,  # type: ignore[assignment]
    step_decoder: msgspec.json.Decoder[S] = step_view_decoder,  # type: ignore[assignment]
) -> dict[str, J]:
    """Jobs from their ``jobs.snapshot`` and their ``job_steps`` rows (for rows written before the
    steps had a table of their own, the steps inline): as the public ``JobView`` by default; the
    orchestrator passes the decoders of its own state."""
    steps: dict[str, dict[str, S]] = {}
    for job_id, raw in step_rows:
        step = step_decoder.decode(raw)
        steps.setdefault(job_id, {})[step.name] = step  # type: ignore[attr-defined]
    out = {}
    for job_id, raw in raw_jobs:
        snap = job_decoder.decode(raw)
        out[job_id] = replace(snap, steps=steps[job_id]) if job_id in steps else snap
    return out


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, busy_timeout_ms: int = 30_000) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cur.close()


def _locked(exc: sa.exc.OperationalError) -> bool:
    """SQLite's "database is locked" (or a snapshot gone stale under a writer): try again later."""
    code = getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def make_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so readers and the writer coexist."""
    if url.startswith("sqlite"):
        # A pool large enough for a busy gateway: past pool_size, each checkout would open (a
        # thread, the file, three PRAGMAs) and close a connection of its own.
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=32, max_overflow=32)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


T = TypeVar("T")

UNITS_WAITED = Counter(
    "atelier_sql_units_sent_to_a_thread_total",
    "Units of SQL work meant to run on the event loop that went to a worker thread, by why",
    ["reason"],
)


def _run(engine: sa.Engine, fn: Callable[[sa.Connection], T], write: bool) -> T:
    with engine.begin() if write else engine.connect() as conn:
        return fn(conn)


class SqlUnits:
    """Runs several statements as one unit of work: ``fn(connection)``.

    On SQLite the unit runs on a synchronous connection: through aiosqlite every statement is a
    hop between threads and back through the event loop, and a busy loop makes each hop wait
    (``docs/benchmarks.md``). With ``inline`` a unit may run right on the event loop, for short
    units (a read by key, a projector's small batch): in a worker thread, the unit gave up and
    took back the GIL at every SQLite call, and with the loop busy each take waited for it, so a
    batch that costs 2 ms of CPU took 50 ms. A long unit still goes to the thread (``run``'s
    ``inline=False``), where SQLite's own work runs beside the loop's. Inline, a unit never waits
    for a lock: where another writer holds the database it goes to the worker thread, which waits
    for it. Elsewhere (PostgreSQL) the unit runs on the async connection.
    """

    def __init__(self, engine: AsyncEngine, threads: int, name: str, inline: bool = False) -> None:
        self.engine = engine
        self._sync: sa.Engine | None = None
        self._inline: sa.Engine | None = None
        self._threads: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite":
            url = engine.url.set(drivername="sqlite")
            self._sync = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            sa.event.listen(self._sync, "connect", _sqlite_pragmas)
            self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
            if inline:
                self._inline = sa.create_engine(url, connect_args={"timeout": 0, "check_same_thread": False})
                sa.event.listen(
                    self._inline, "connect", functools.partial(_sqlite_pragmas, busy_timeout_ms=0)
                )

    async def run(self, fn: Callable[[sa.Connection], T], *, write: bool, inline: bool = True) -> T:
        """``fn`` in a transaction committed at its end (``write``), or on a plain connection;
        ``inline=False``: in the worker thread even where units may run inline."""
        if self._sync is None:
            async with self.engine.begin() if write else self.engine.connect() as conn:
                return await conn.run_sync(fn)
        if self._inline is not None and inline:
            try:
                return _run(self._inline, fn, write)
            except sa.exc.OperationalError as exc:
                if not _locked(exc):
                    raise
                UNITS_WAITED.labels("locked").inc()  # rolled back: again where it may wait
        return await asyncio.get_running_loop().run_in_executor(self._threads, _run, self._sync, fn, write)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
        if self._inline is not None:
            self._inline.dispose()
        if self._threads is not None:
            self._threads.shutdown(wait=False)


_PYSQLITE = pysqlite.dialect()


@dataclass(frozen=True)
class _SqliteForm:
    """A statement as sqlite3 runs it: its SQL, its parameters' names in order, and the converter
    of each parameter that has one (SQLAlchemy's own: a datetime's text, JSON's dump, a bool's int)."""

    sql: str
    names: tuple[str, ...]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]

    def params(self, rows: Iterable[dict[str, Any]]) -> list[list[Any]]:
        names, converters = self.names, self.converters
        out = []
        for row in rows:
            values = [row[name] for name in names]
            for i, convert in converters:
                values[i] = convert(values[i])
            out.append(values)
        return out


@functools.cache
def _sqlite_form(stmt: sa.ClauseElement, keys: tuple[str, ...], reads: bool = False) -> _SqliteForm:
    compiled = stmt.compile(dialect=_PYSQLITE, column_keys=list(keys))
    assert isinstance(compiled, SQLCompiler)
    if compiled.insert_prefetch or compiled.update_prefetch:
        raise ValueError("a column with a default computed in Python: run it with conn.execute")
    if reads:
        assert isinstance(stmt, sa.Select)
        for column in stmt.selected_columns:
            if column.type.dialect_impl(_PYSQLITE).result_processor(_PYSQLITE, None) is not None:
                raise ValueError(f"{column.name} is converted as it is read: run it with conn.execute")
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[name] for name in names]
    if any(b.expanding or b.literal_execute or not b.required for b in binds):
        raise ValueError("a parameter with a value of its own, or an IN list: run it with conn.execute")
    types = [b.type.dialect_impl(_PYSQLITE) for b in binds]
    converters = ((i, t.bind_processor(_PYSQLITE)) for i, t in enumerate(types))
    return _SqliteForm(compiled.string, names, tuple((i, c) for i, c in converters if c is not None))


def execute_many(conn: sa.Connection, stmt: sa.Executable, rows: list[dict[str, Any]]) -> int:
    """``stmt`` (an insert of a table, or a statement built once with its own bind parameters; no
    expanding ones) run once for each of ``rows``, which share their keys; the rows it changed.

    On SQLite through ``sqlite3``'s own ``executemany``, in the connection's transaction, with
    the statement compiled and its converters found once: SQLAlchemy's execution costs ~30 µs a
    statement and ~4 µs a row beyond what sqlite3 takes (``docs/benchmarks.md``), most of a small
    projector batch. Its errors are SQLAlchemy's, as ``conn.execute`` raises them (a locked
    database an ``OperationalError``, a duplicate key an ``IntegrityError``). Elsewhere
    ``conn.execute``.
    """
    if conn.dialect.name != "sqlite":
        return conn.execute(stmt, rows).rowcount
    form = _sqlite_form(stmt, tuple(rows[0]))
    params = form.params(rows)
    with _as_sqlalchemy_raises(conn, form.sql):
        return int(_driver(conn).executemany(form.sql, params).rowcount)


def fetch_all(conn: sa.Connection, stmt: sa.Select[Any], params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of ``stmt`` (built once, with its own bind parameters; no expanding ones), as
    tuples in the order of its columns; on SQLite through ``sqlite3`` itself, as ``execute_many``.
    Only for columns SQLite returns as they are read (text, numbers): nothing converts them."""
    if conn.dialect.name != "sqlite":
        return [tuple(row) for row in conn.execute(stmt, params)]
    form = _sqlite_form(stmt, tuple(params), reads=True)
    with _as_sqlalchemy_raises(conn, form.sql):
        return list(_driver(conn).execute(form.sql, form.params((params,))[0]).fetchall())


def _driver(conn: sa.Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


@contextlib.contextmanager
def _as_sqlalchemy_raises(conn: sa.Connection, sql: str) -> Iterator[None]:
    """sqlite3's errors as SQLAlchemy raises them: ``sa.exc.IntegrityError``, ``OperationalError`` …"""
    try:
        yield
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, sqlite3.Error, dialect=conn.dialect) from exc


async def dump(conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row in a stable order: two equal dumps mean equal read models."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in READ_MODEL_TABLES:
        order = [c for c in table.primary_key.columns]
        rows = (await conn.execute(sa.select(table).order_by(*order))).all()
        out[table.name] = [tuple(r) for r in rows]
    return out
