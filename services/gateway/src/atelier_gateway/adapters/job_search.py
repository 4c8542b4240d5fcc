"""Filtered job lists with keyset pagination over the ``jobs`` and ``job_tags`` read models.

A page continues strictly after the previous page's last (sort value, id), so pages never
repeat or skip rows, whatever is inserted meanwhile, and cost the same deep down as up front.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from atelier_contracts.readmodel import assemble, job_tags, jobs, steps_of
from atelier_contracts.snapshot import JobView
from atelier_gateway.adapters.readmodel import visible
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.job_query import JobFilter, PageRow, Position, SortKey, as_utc
from atelier_gateway.app.ports import FoundJob


class SqlJobSearch(SqlAdapter):
    async def page(
        self, tenant: str, flt: JobFilter, sort: SortKey, after: Position | None, limit: int
    ) -> list[PageRow]:
        column = jobs.c[sort.field]
        query = sa.select(jobs.c.id, jobs.c.snapshot, column.label("sort_value")).where(
            *_criteria(tenant, flt)
        )
        if after is not None:
            value: Any = after.sort_value
            if isinstance(value, datetime):
                value = as_utc(value)
            if sort.descending:
                query = query.where(
                    sa.or_(column < value, sa.and_(column == value, jobs.c.id < after.job_id))
                )
            else:
                query = query.where(
                    sa.or_(column > value, sa.and_(column == value, jobs.c.id > after.job_id))
                )
        order = (column.desc(), jobs.c.id.desc()) if sort.descending else (column.asc(), jobs.c.id.asc())
        query = query.order_by(*order).limit(limit)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).all()
            found = await _with_steps(conn, [(row.id, row.snapshot) for row in rows])
        return [
            PageRow(
                job=found[row.id],
                position=Position(
                    sort_value=row.sort_value if sort.field == "priority" else utc(row.sort_value),
                    job_id=row.id,
                ),
            )
            for row in rows
        ]

    async def match(self, tenant: str, flt: JobFilter, limit: int) -> list[FoundJob]:
        query = (
            sa.select(jobs.c.id, jobs.c.status)
            .where(*_criteria(tenant, flt))
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(limit)
        )
        async with self._connect() as conn:
            return [FoundJob(row.id, row.status) for row in await conn.execute(query)]

    async def existing(self, tenant: str, job_ids: list[str]) -> list[FoundJob]:
        if not job_ids:
            return []
        query = sa.select(jobs.c.id, jobs.c.status).where(visible(tenant), jobs.c.id.in_(job_ids))
        async with self._connect() as conn:
            found = {row.id: row.status for row in await conn.execute(query)}
        return [FoundJob(job_id, found[job_id]) for job_id in job_ids if job_id in found]

    async def tagged(self, tenant: str, tag: str) -> list[JobView]:
        query = (
            sa.select(jobs.c.id, jobs.c.snapshot)
            .where(visible(tenant), jobs.c.id.in_(_carrying(tenant, tag)))
            .order_by(jobs.c.created_at, jobs.c.id)
        )
        async with self._connect() as conn:
            rows = (await conn.execute(query)).all()
            found = await _with_steps(conn, [(row.id, row.snapshot) for row in rows])
        return [found[row.id] for row in rows]


async def _with_steps(conn: AsyncConnection, raw_jobs: list[tuple[str, str]]) -> dict[str, JobView]:
    if not raw_jobs:
        return {}
    steps = (await conn.execute(steps_of(job_id for job_id, _ in raw_jobs))).all()
    return assemble(raw_jobs, ((s.job_id, s.snapshot) for s in steps))


def _carrying(tenant: str, tag: str) -> sa.Select[tuple[str]]:
    return sa.select(job_tags.c.job_id).where(job_tags.c.tenant == tenant, job_tags.c.tag == tag)


def _criteria(tenant: str, flt: JobFilter) -> list[sa.ColumnElement[bool]]:
    where = [visible(tenant)]
    if flt.statuses:
        where.append(jobs.c.status.in_(sorted(set(flt.statuses))))
    if flt.kinds:
        where.append(jobs.c.kind.in_(sorted(set(flt.kinds))))
    if flt.priorities:
        where.append(jobs.c.priority.in_(sorted(set(flt.priorities))))
    if flt.priority_min is not None:
        where.append(jobs.c.priority >= flt.priority_min)
    if flt.priority_max is not None:
        where.append(jobs.c.priority <= flt.priority_max)
    for tag in sorted(set(flt.tags)):
        where.append(jobs.c.id.in_(_carrying(tenant, tag)))
    if flt.created_after is not None:
        where.append(jobs.c.created_at >= as_utc(flt.created_after))
    if flt.created_before is not None:
        where.append(jobs.c.created_at < as_utc(flt.created_before))
    if flt.q:
        where.append(jobs.c.title.icontains(flt.q, autoescape=True))
    return where
