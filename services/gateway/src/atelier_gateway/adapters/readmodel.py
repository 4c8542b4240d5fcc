"""Read-model queries with SQLAlchemy Core on the tables the orchestrator's projector writes."""

from __future__ import annotations

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from atelier_contracts.readmodel import assemble, assets, fetch_all, job_events, job_steps, jobs, uploads
from atelier_contracts.snapshot import JobView
from atelier_contracts.uploads import Ingested
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.ports import StoredAsset, StoredEvent

_ingested = msgspec.json.Decoder(Ingested)


def visible(tenant: str | sa.BindParameter[str]) -> sa.ColumnElement[bool]:
    """The tenant's jobs that are not deleted: everything the API may show."""
    return sa.and_(jobs.c.tenant == tenant, jobs.c.deleted.is_(sa.false()))


async def job_asset(conn: AsyncConnection, tenant: str, asset_id: str) -> StoredAsset | None:
    """A file a job of the tenant made (not a deleted job's), by its asset id."""
    query = (
        sa.select(assets)
        .join(jobs, jobs.c.id == assets.c.job_id)
        .where(assets.c.id == asset_id, visible(tenant))
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return StoredAsset(
        id=row.id,
        job_id=row.job_id,
        step=row.step,
        name=row.name,
        kind=row.kind,
        content_type=row.content_type,
        blob_key=row.blob_key,
        size=row.size,
    )


# A job and its steps in one statement, so both come from one state of the read model. Built
# once: a statement built per call costs its construction and its cache key (~10 % of a GET).
_JOB = (
    sa.select(jobs.c.snapshot, job_steps.c.snapshot.label("step"))
    .outerjoin(job_steps, job_steps.c.job_id == jobs.c.id)
    .where(jobs.c.id == sa.bindparam("job_id"), visible(sa.bindparam("tenant", type_=sa.String())))
    .order_by(job_steps.c.position)
)


class SqlJobReader(SqlAdapter):
    async def ping(self) -> None:
        async with self._connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def job(self, tenant: str, job_id: str) -> JobView | None:
        def read(conn: sa.Connection) -> JobView | None:
            rows = fetch_all(conn, _JOB, {"job_id": job_id, "tenant": tenant})
            if not rows:
                return None
            steps = [(job_id, step) for _, step in rows if step is not None]
            return assemble([(job_id, rows[0][0])], steps)[job_id]

        return await self._read(read)

    async def last_seq(self, tenant: str, job_id: str) -> int | None:
        query = sa.select(jobs.c.last_seq).where(jobs.c.id == job_id, jobs.c.tenant == tenant)
        async with self._connect() as conn:
            seq: int | None = (await conn.execute(query)).scalar_one_or_none()
        return seq

    async def events(
        self, tenant: str, job_id: str, after: tuple[int, int] | None = None, limit: int | None = None
    ) -> list[StoredEvent] | None:
        exists = sa.select(jobs.c.id).where(jobs.c.id == job_id, visible(tenant))
        query = (
            sa.select(job_events)
            .where(job_events.c.job_id == job_id)
            .order_by(job_events.c.seq, job_events.c.idx)
        )
        if after is not None:
            query = query.where(sa.tuple_(job_events.c.seq, job_events.c.idx) > sa.tuple_(*after))
        if limit is not None:
            query = query.limit(limit)
        async with self._connect() as conn:
            if (await conn.execute(exists)).first() is None:
                return None
            rows = (await conn.execute(query)).all()
        return [
            StoredEvent(
                event_id=row.event_id,
                seq=row.seq,
                index=row.idx,
                type=row.type,
                at=utc(row.at),
                data=msgspec.json.decode(row.data),
            )
            for row in rows
        ]

    async def asset(self, tenant: str, asset_id: str) -> StoredAsset | None:
        if asset_id.startswith("upl_"):
            return await self._upload_file(tenant, asset_id)
        async with self._connect() as conn:
            return await job_asset(conn, tenant, asset_id)

    async def _upload_file(self, tenant: str, asset_id: str) -> StoredAsset | None:
        """An upload's file: ``<upload id>.original`` or ``<upload id>.thumbnail``."""
        upload_id, _, name = asset_id.partition(".")
        if name not in ("original", "thumbnail"):
            return None
        query = sa.select(uploads.c.info).where(uploads.c.id == upload_id, uploads.c.tenant == tenant)
        async with self._connect() as conn:
            info = (await conn.execute(query)).scalar_one_or_none()
        if info is None:
            return None
        found = _ingested.decode(info)
        blob = found.original if name == "original" else found.thumbnail
        if blob is None:
            return None
        return StoredAsset(
            id=asset_id,
            job_id="",
            step="upload",
            name=name,
            kind=found.kind if name == "original" else "thumbnail",
            content_type=blob.content_type,
            blob_key=blob.key,
            size=blob.size,
        )
