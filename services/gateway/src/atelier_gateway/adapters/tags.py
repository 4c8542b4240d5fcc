"""The tag registry (the gateway's ``tags`` table) joined with the tags jobs carry (``job_tags``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from atelier_contracts.readmodel import job_tags, jobs, tags
from atelier_gateway.adapters.readmodel import visible
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.errors import TagExists
from atelier_gateway.app.ports import TagInfo


class SqlTagRegistry(SqlAdapter):
    async def tags(self, tenant: str) -> list[TagInfo]:
        counts = (
            sa.select(job_tags.c.tag, sa.func.count().label("jobs"))
            .join(jobs, jobs.c.id == job_tags.c.job_id)
            .where(job_tags.c.tenant == tenant, visible(tenant))
            .group_by(job_tags.c.tag)
        )
        registered = sa.select(tags.c.name, tags.c.created_at).where(tags.c.tenant == tenant)
        async with self._connect() as conn:
            used = {row.tag: int(row.jobs) for row in await conn.execute(counts)}
            created = {row.name: row.created_at for row in await conn.execute(registered)}
        return [
            TagInfo(
                name=name,
                job_count=used.get(name, 0),
                created_at=utc(created[name]) if name in created else None,
            )
            for name in sorted(used.keys() | created.keys())
        ]

    async def in_use(self, tenant: str, name: str) -> bool:
        registered = sa.select(tags.c.name).where(tags.c.tenant == tenant, tags.c.name == name)
        carried = (
            sa.select(job_tags.c.tag)
            .join(jobs, jobs.c.id == job_tags.c.job_id)
            .where(job_tags.c.tenant == tenant, job_tags.c.tag == name, visible(tenant))
            .limit(1)
        )
        async with self._connect() as conn:
            if (await conn.execute(registered)).first() is not None:
                return True
            return (await conn.execute(carried)).first() is not None

    async def create(self, tenant: str, name: str, now: datetime) -> bool:
        try:
            async with self._begin() as conn:
                await conn.execute(sa.insert(tags).values(tenant=tenant, name=name, created_at=now))
        except sa.exc.IntegrityError:
            return False
        return True

    async def rename(self, tenant: str, old: str, new: str) -> bool:
        try:
            async with self._begin() as conn:
                result = await conn.execute(
                    sa.update(tags).where(tags.c.tenant == tenant, tags.c.name == old).values(name=new)
                )
        except sa.exc.IntegrityError:  # registered by a concurrent request since we checked
            raise TagExists(f"The tag {new!r} exists already.") from None
        return bool(result.rowcount)

    async def delete(self, tenant: str, name: str) -> bool:
        async with self._begin() as conn:
            result = await conn.execute(sa.delete(tags).where(tags.c.tenant == tenant, tags.c.name == name))
        return bool(result.rowcount)
