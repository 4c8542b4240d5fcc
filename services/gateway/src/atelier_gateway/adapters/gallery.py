"""The gallery: every output file of the tenant's jobs, newest first, from the ``assets`` read model
joined to ``jobs`` (kept when a job is; gone when it is deleted), with keyset pages. A file is
shown once, as the job that made it: a later job given it (an export of an adopted candidate)
does not show it again (``ix_assets_blob_key``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from atelier_contracts.readmodel import assets, job_tags, jobs
from atelier_gateway.adapters.readmodel import visible
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.gallery import GalleryFilter, GalleryItem
from atelier_gateway.app.job_query import Position, as_utc


class SqlGallery(SqlAdapter):
    async def page(
        self, tenant: str, flt: GalleryFilter, after: Position | None, limit: int
    ) -> list[GalleryItem]:
        a, j = assets, jobs
        earlier = assets.alias("earlier")
        made_before = sa.exists().where(  # a file a job was given (an adopted candidate) is shown once
            earlier.c.blob_key == a.c.blob_key,
            sa.or_(
                earlier.c.created_at < a.c.created_at,
                sa.and_(earlier.c.created_at == a.c.created_at, earlier.c.id < a.c.id),
            ),
        )
        query = (
            sa.select(a, j.c.kind.label("job_kind"), j.c.title)
            .join(j, j.c.id == a.c.job_id)
            .where(visible(tenant), a.c.name != "original", ~made_before)  # an upload is no output
        )
        if flt.kinds:
            query = query.where(a.c.kind.in_(flt.kinds))
        if flt.job_kinds:
            query = query.where(j.c.kind.in_(flt.job_kinds))
        if flt.job_ids is not None:
            query = query.where(a.c.job_id.in_(flt.job_ids))
        if flt.tag:
            tagged = sa.select(job_tags.c.job_id).where(
                job_tags.c.tenant == tenant, job_tags.c.tag == flt.tag
            )
            query = query.where(a.c.job_id.in_(tagged))
        if flt.created_after is not None:
            query = query.where(a.c.created_at >= as_utc(flt.created_after))
        if flt.created_before is not None:
            query = query.where(a.c.created_at < as_utc(flt.created_before))
        if flt.q:
            pattern = f"%{flt.q.lower()}%"
            query = query.where(
                sa.or_(sa.func.lower(j.c.title).like(pattern), sa.func.lower(a.c.name).like(pattern))
            )
        if after is not None:
            at = as_utc(after.sort_value) if isinstance(after.sort_value, datetime) else after.sort_value
            query = query.where(
                sa.or_(a.c.created_at < at, sa.and_(a.c.created_at == at, a.c.id < after.job_id))
            )
        query = query.order_by(a.c.created_at.desc(), a.c.id.desc()).limit(limit)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            GalleryItem(
                id=row.id,
                job_id=row.job_id,
                job_kind=row.job_kind,
                title=row.title,
                step=row.step,
                name=row.name,
                kind=row.kind,
                content_type=row.content_type,
                size=row.size,
                created_at=utc(row.created_at),
            )
            for row in rows
        ]
