"""Projects commits into the SQL read models, recording the applied sequence in the same transaction.

Commits of one job must be applied in order. A commit names the sequence of the job's previous
commit (``prev_seq``); the projection applies it only when that is what it last applied, skips
it when it applied it already, and asks for it again later when an earlier one is missing.

Many commits go into one transaction (everything that arrived while the last batch was
written): one read of the jobs' applied sequences, then each table written once with all its
rows. The snapshots of recently projected jobs are kept in memory, keyed by the sequence they
stand at, so a job's row is decoded again only when another writer moved it.
"""

from __future__ import annotations

import contextlib
import enum
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any

import msgspec
import sqlalchemy as sa
from msgspec.structs import replace
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.budgets import project_of
from atelier_contracts.envelope import encode
from atelier_contracts.events import (
    Commit,
    EventRecord,
    JobEvent,
    JobRequeued,
    JobSubmitted,
    ProviderCalled,
    StepRetryRequested,
    StepsPlanned,
    StepSucceeded,
)
from atelier_contracts.ids import asset_id
from atelier_contracts.readmodel import (
    SqlUnits,
    assemble,
    assets,
    execute_many,
    job_events,
    job_steps,
    job_tags,
    jobs,
    provider_calls,
    steps_of,
)
from atelier_orchestrator.domain.snapshot import JobSnapshot, snapshot_decoder, step_decoder
from atelier_orchestrator.domain.state import apply_commit


class Applied(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


def _event_type(event: msgspec.Struct) -> str:
    return str(type(event).__struct_config__.tag)


class SnapshotCache:
    """The latest projected snapshot of recent jobs; an entry counts only at its own sequence."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: OrderedDict[str, JobSnapshot] = OrderedDict()

    def get(self, job_id: str, seq: int) -> JobSnapshot | None:
        found = self._entries.get(job_id)
        if found is None or found.version != seq:
            return None
        self._entries.move_to_end(job_id)
        return found

    def version(self, job_id: str) -> int | None:
        """The sequence of the entry held for the job, if any."""
        found = self._entries.get(job_id)
        return None if found is None else found.version

    def put(self, snapshot: JobSnapshot) -> None:
        self._entries[snapshot.id] = snapshot
        self._entries.move_to_end(snapshot.id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


INLINE_COMMITS = 32
"""The largest batch written on the event loop (~2 ms of CPU); a larger one, as in a burst, is
written in the worker thread, where SQLite's work runs beside the loop's: a bound on how long a
batch holds the loop that decides commands."""


class SqlProjection:
    """Writes batches of commits, each as one unit of work (on SQLite, on the event loop: ``SqlUnits``).

    ``sole_writer``: nothing else writes these tables while it runs and they started empty (a
    rebuild), so the cache and a commit's ``prev_seq`` tell where a job stands without asking SQL.

    Otherwise, where the database counts the rows an executemany changed (SQLite), a job's row is
    updated only where it still stands at the sequence the batch started from, so a writer that
    moved it meanwhile is found out. There a batch first trusts the cache as a rebuild does, and
    those checked writes (and an insert's primary key) prove it right; any doubt (a row elsewhere,
    a commit the cache would call a duplicate or early) rolls the batch back, and it is written
    again after asking SQL where each job stands. Asking cost ~80 µs of a small batch's ~0.5 ms.
    """

    def __init__(
        self, engine: AsyncEngine, cache: SnapshotCache | None = None, sole_writer: bool = False
    ) -> None:
        self.cache = cache or SnapshotCache()
        self.sole_writer = sole_writer
        self.checked = not sole_writer and engine.dialect.supports_sane_multi_rowcount
        self._units = SqlUnits(engine, threads=1, name="projector", inline=True)

    async def apply_batch(self, commits: Sequence[tuple[Commit, int]]) -> list[Applied]:
        """Apply commits (in stream order) in one transaction; one outcome per commit."""
        batch: _Batch | None = None
        if self.checked:
            with contextlib.suppress(_Unsure, sa.exc.IntegrityError):  # rolled back: ask SQL
                batch = await self._apply(commits, known=True)
        if batch is None:
            batch = await self._apply(commits, known=self.sole_writer)
        for snapshot in batch.states.values():  # only once committed
            self.cache.put(snapshot)
        return batch.outcomes

    async def _apply(self, commits: Sequence[tuple[Commit, int]], known: bool) -> _Batch:
        return await self._units.run(
            lambda conn: apply_in(conn, commits, self.cache, known=known, checked=self.checked),
            write=True,
            inline=len(commits) <= INLINE_COMMITS,
        )

    def close(self) -> None:
        self._units.close()


class _Batch:
    """What a batch of commits writes, gathered so that each table is written once."""

    def __init__(self) -> None:
        self.outcomes: list[Applied] = []
        self.states: dict[str, JobSnapshot] = {}
        self.existing: set[str] = set()
        self.before: dict[str, JobSnapshot] = {}
        """The jobs' rows before this batch, as snapshots: an update sets only what changed."""
        self.tags_changed: set[str] = set()
        self.steps_changed: dict[str, set[str]] = {}
        """Per job, the steps whose rows to rewrite (all of them for a row that kept them inline)."""
        self.events: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.assets: dict[str, dict[str, Any]] = {}


class _Unsure(Exception):
    """The cache may not say where a job's row stands: roll back and ask SQL."""


def apply_in(
    conn: sa.Connection,
    commits: Sequence[tuple[Commit, int]],
    cache: SnapshotCache,
    *,
    known: bool = False,
    checked: bool = False,
) -> _Batch:
    """``known``: where the jobs stand as the cache says, not as SQL does (``_known_seqs``).
    ``checked``: an update only of a row still where the batch started from (``_Unsure`` if not);
    with ``known`` too, a commit the cache calls a duplicate or early is a doubt as well."""
    batch = _Batch()
    doubts = known and checked
    firsts = {commit.job_id: commit.prev_seq for commit, _ in reversed(commits)}
    applied = _known_seqs(conn, firsts, cache) if known else _applied_seqs(conn, list(firsts))
    batch.existing = set(applied)
    starting, inline = _snapshots(conn, applied, cache)
    batch.before = {job_id: starting[job_id] for job_id in batch.existing if job_id in starting}
    for job_id in inline:
        batch.steps_changed[job_id] = set(starting[job_id].steps)
    last = dict(applied)
    for commit, seq in commits:
        job_id = commit.job_id
        at = last.get(job_id, 0)
        if job_id in last and seq <= at:
            if doubts:
                raise _Unsure(job_id)
            batch.outcomes.append(Applied.DUPLICATE)
            continue
        if commit.prev_seq != at:
            if doubts:
                raise _Unsure(job_id)
            batch.outcomes.append(Applied.OUT_OF_ORDER)
            continue
        state = batch.states.get(job_id) or starting.get(job_id)
        new = apply_commit(state, commit, seq)
        _gather(conn, batch, commit, seq, state, new)
        batch.states[job_id] = new
        last[job_id] = seq
        batch.outcomes.append(Applied.APPLIED)
    _write(conn, batch, checked)
    return batch


# The statements of every batch, built once with expanding parameters: built per batch, a
# statement with an IN list cost ~40 µs to construct and key for the compiled cache.
_APPLIED = sa.select(jobs.c.id, jobs.c.last_seq).where(jobs.c.id.in_(sa.bindparam("ids", expanding=True)))
_SNAPSHOTS = sa.select(jobs.c.id, jobs.c.snapshot).where(jobs.c.id.in_(sa.bindparam("ids", expanding=True)))
_DELETE_ASSET = sa.delete(assets).where(assets.c.id == sa.bindparam("v_id"))
_DELETE_TAGS = sa.delete(job_tags).where(job_tags.c.job_id == sa.bindparam("v_job_id"))
_INSERT = {t: sa.insert(t) for t in (jobs, job_steps, job_events, provider_calls, assets, job_tags)}
"""The executemany statements, built once: ``execute_many`` finds each one's SQL once."""


def _applied_seqs(conn: sa.Connection, ids: list[str]) -> dict[str, int]:
    return {row.id: row.last_seq for row in conn.execute(_APPLIED, {"ids": ids})}


def _known_seqs(conn: sa.Connection, firsts: dict[str, int], cache: SnapshotCache) -> dict[str, int]:
    """As ``_applied_seqs``, for the only writer of tables that started empty: a job whose first
    commit here is its first of all has no row; a cached job is where its cache entry says."""
    known, ask = {}, []
    for job_id, prev_seq in firsts.items():
        if (seq := cache.version(job_id)) is not None:
            known[job_id] = seq
        elif prev_seq:
            ask.append(job_id)
    return known | (_applied_seqs(conn, ask) if ask else {})


def _snapshots(
    conn: sa.Connection, applied: dict[str, int], cache: SnapshotCache
) -> tuple[dict[str, JobSnapshot], set[str]]:
    """The jobs' snapshots as projected; and those whose row still holds its steps inline."""
    found = {job_id: s for job_id, seq in applied.items() if (s := cache.get(job_id, seq)) is not None}
    missing = [job_id for job_id in applied if job_id not in found]
    inline: set[str] = set()
    if missing:
        rows = conn.execute(_SNAPSHOTS, {"ids": missing}).all()
        step_rows = conn.execute(steps_of(missing)).all()
        loaded = assemble(
            ((r.id, r.snapshot) for r in rows),
            ((r.job_id, r.snapshot) for r in step_rows),
            snapshot_decoder,
            step_decoder,
        )
        with_rows = {r.job_id for r in step_rows}
        inline = {job_id for job_id, snap in loaded.items() if snap.steps and job_id not in with_rows}
        found.update(loaded)
    return found, inline


def _gather(
    conn: sa.Connection, batch: _Batch, commit: Commit, seq: int, old: JobSnapshot | None, new: JobSnapshot
) -> None:
    batch.events.extend(
        {
            "job_id": commit.job_id,
            "seq": seq,
            "idx": i,
            "event_id": record.event_id,
            "type": _event_type(record.event),
            "at": commit.at,
            "data": encode(record.event).decode(),
        }
        for i, record in enumerate(commit.events)
    )
    calls = [r for r in commit.events if isinstance(r.event, ProviderCalled)]
    if calls:
        batch.calls.extend(_call_rows(new, calls))
    for record in commit.events:
        event = record.event
        if isinstance(event, StepSucceeded):
            for artifact in event.outputs:
                aid = asset_id(commit.job_id, event.step, artifact.name)
                batch.assets[aid] = {
                    "id": aid,
                    "job_id": commit.job_id,
                    "step": event.step,
                    "name": artifact.name,
                    "kind": artifact.kind,
                    "content_type": artifact.blob.content_type,
                    "blob_key": artifact.blob.key,
                    "size": artifact.blob.size,
                    "created_at": commit.at,
                }
        elif isinstance(event, StepRetryRequested | JobRequeued):
            # The steps run anew: their old outputs are no longer the job's assets.
            reset = set(event.reset)
            conn.execute(sa.delete(assets).where(assets.c.job_id == commit.job_id, assets.c.step.in_(reset)))
            for aid in [
                a
                for a, row in batch.assets.items()
                if row["job_id"] == commit.job_id and row["step"] in reset
            ]:
                del batch.assets[aid]
    if old is None or old.tags != new.tags or new.deleted != old.deleted:
        batch.tags_changed.add(new.id)
    changed = batch.steps_changed.setdefault(new.id, set())
    for record in commit.events:
        changed.update(_steps_touched(record.event, new))


def _steps_touched(event: JobEvent, job: JobSnapshot) -> Iterable[str]:
    """The steps whose rows an event changes: found from the event, so that a commit costs the
    same in a job of 150 steps as in one of 5."""
    if isinstance(event, JobSubmitted | StepsPlanned):
        return job.steps.keys()  # a plan inserts steps: the positions after them move
    if isinstance(event, JobRequeued | StepRetryRequested):
        return event.reset
    step = getattr(event, "step", None)
    return (step,) if isinstance(step, str) and step in job.steps else ()


_COLUMNS: dict[str, Callable[[JobSnapshot], Any]] = {
    "tenant": attrgetter("tenant"),
    "kind": attrgetter("kind"),
    "title": attrgetter("title"),
    "status": attrgetter("status"),
    "priority": attrgetter("priority"),
    "tags": attrgetter("tags"),
    "created_at": attrgetter("created_at"),
    "updated_at": attrgetter("updated_at"),
    "last_seq": attrgetter("version"),
    "next_deadline_at": attrgetter("next_deadline"),
    "deleted": attrgetter("deleted"),
}
"""The ``jobs`` columns a snapshot's fields fill, besides ``id`` and the ``snapshot`` itself."""
_DERIVED = ("next_deadline_at",)
"""Columns computed from the snapshot: always written, so a row whose value an older version (or
none, before migration 0002) computed is mended by its next commit."""


def _row_snapshot(job: JobSnapshot) -> str:
    return encode(replace(job, steps={})).decode()  # the steps have rows of their own


def _job_values(job: JobSnapshot) -> dict[str, Any]:
    values = {column: get(job) for column, get in _COLUMNS.items()}
    return values | {"id": job.id, "snapshot": _row_snapshot(job)}


@functools.cache
def _update(columns: tuple[str, ...], checked: bool) -> sa.Update:
    """An executemany UPDATE of these columns (its parameters must not share the columns' names);
    ``checked``: only of a row still at ``v_before``.

    Only the columns that changed: SQLite rewrites an index whose column is set, even to the value
    it had, so setting every column wrote ~4 pages of ``jobs`` a commit where this writes 1-2.
    """
    where = jobs.c.id == sa.bindparam("v_id")
    if checked:
        where = sa.and_(where, jobs.c.last_seq == sa.bindparam("v_before"))
    return sa.update(jobs).where(where).values({c: sa.bindparam(f"v_{c}") for c in columns})


def _updates(batch: _Batch, checked: bool) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """The rows of the jobs the read model had, grouped by the columns that changed."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for job_id in batch.existing:
        job = batch.states.get(job_id)
        if job is None:
            continue
        before = batch.before.get(job_id)
        changed = [
            c for c, get in _COLUMNS.items() if before is None or c in _DERIVED or get(job) != get(before)
        ]
        row = {f"v_{c}": _COLUMNS[c](job) for c in changed}
        row |= {"v_id": job_id, "v_snapshot": _row_snapshot(job)}
        if checked:
            row["v_before"] = before.version if before is not None else -1
        groups.setdefault((*changed, "snapshot"), []).append(row)
    return groups


def _write(conn: sa.Connection, batch: _Batch, checked: bool) -> None:
    if not batch.states:
        return
    new = [_job_values(job) for job in batch.states.values() if job.id not in batch.existing]
    if new:
        execute_many(conn, _INSERT[jobs], new)
    for columns, rows in _updates(batch, checked).items():
        updated = execute_many(conn, _update(columns, checked), rows)
        if checked and updated != len(rows):
            raise _Unsure("a row was not where this batch found it")
    _write_steps(conn, batch)
    if batch.events:
        execute_many(conn, _INSERT[job_events], batch.events)
    if batch.calls:
        execute_many(conn, _INSERT[provider_calls], batch.calls)
    if batch.assets:
        execute_many(conn, _DELETE_ASSET, [{"v_id": aid} for aid in batch.assets])
        execute_many(conn, _INSERT[assets], list(batch.assets.values()))
    if batch.tags_changed:
        changed = list(batch.tags_changed)
        execute_many(conn, _DELETE_TAGS, [{"v_job_id": job_id} for job_id in changed])
        tag_rows = [
            {"job_id": job.id, "tag": tag, "tenant": job.tenant}
            for job in (batch.states[i] for i in changed)
            if not job.deleted
            for tag in dict.fromkeys(job.tags)
        ]
        if tag_rows:
            execute_many(conn, _INSERT[job_tags], tag_rows)


_DELETE_STEP = sa.delete(job_steps).where(
    job_steps.c.job_id == sa.bindparam("v_job_id"), job_steps.c.name == sa.bindparam("v_name")
)


def _write_steps(conn: sa.Connection, batch: _Batch) -> None:
    rows = []
    for job_id, names in batch.steps_changed.items():
        job = batch.states.get(job_id)
        if job is None or not names:
            continue
        for name, position in _positions(job, names):
            snapshot = encode(job.steps[name]).decode()
            rows.append({"job_id": job_id, "name": name, "position": position, "snapshot": snapshot})
    # Rows to replace exist only for jobs the read model had before this batch.
    old = [{"v_job_id": r["job_id"], "v_name": r["name"]} for r in rows if r["job_id"] in batch.existing]
    if old:
        execute_many(conn, _DELETE_STEP, old)
    if rows:
        execute_many(conn, _INSERT[job_steps], rows)


def _positions(job: JobSnapshot, names: set[str]) -> Iterable[tuple[str, int]]:
    """Each named step's position in the job: for a few of many steps, found by ``list.index`` (in
    C) rather than by walking the steps in Python, so a commit that changed one step of 150 costs
    what it costs in a job of 5."""
    if len(names) * 8 < len(job.steps):
        order = list(job.steps)
        return ((name, order.index(name)) for name in names if name in job.steps)
    return ((name, i) for i, name in enumerate(job.steps) if name in names)


def _call_rows(job: JobSnapshot, records: list[EventRecord]) -> list[dict[str, Any]]:
    """One row per provider call; a success after a failure or skip of the same attempt is a fallback."""
    rows = []
    for i, record in enumerate(records):
        event = record.event
        assert isinstance(event, ProviderCalled)
        call = event.call
        earlier = [
            r.event for r in records[:i] if isinstance(r.event, ProviderCalled) and r.event.step == event.step
        ]
        rows.append(
            {
                "event_id": record.event_id,
                "job_id": job.id,
                "tenant": job.tenant,
                "project": project_of(job.input),
                "capability": event.capability,
                "step": event.step,
                "attempt": event.attempt,
                "provider": call.provider,
                "model": call.model,
                "outcome": call.outcome,
                "error_class": call.error_class,
                "fallback": call.outcome == "succeeded" and bool(earlier),
                "latency_ms": call.latency_ms,
                "cost_usd": call.usage.cost_usd,
                "units": encode(call.usage.units).decode(),
                "at": call.started_at,
            }
        )
    return rows
