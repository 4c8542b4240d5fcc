"""Uploads: their rows in SQL (the gateway's own table) and the ingest request to media."""

from __future__ import annotations

from datetime import datetime

import msgspec
import sqlalchemy as sa
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.readmodel import uploads
from atelier_contracts.uploads import (
    INGEST_SUBJECT,
    Ingested,
    IngestReply,
    IngestRequest,
    ingest_reply_decoder,
)
from atelier_gateway.adapters.readmodel import job_asset
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.errors import Unavailable
from atelier_gateway.app.ports import Upload

_info = msgspec.json.Decoder(Ingested)


class SqlUploads(SqlAdapter):
    async def add(self, upload: Upload) -> Upload:
        """Store the upload, or answer the one stored before with the same id (same content)."""
        row = {
            "id": upload.id,
            "tenant": upload.tenant,
            "filename": upload.filename,
            "blob_key": upload.info.original.key,
            "thumbnail_key": upload.info.thumbnail.key if upload.info.thumbnail else None,
            "info": msgspec.json.encode(upload.info).decode(),
            "created_at": upload.created_at,
        }
        try:
            async with self._begin() as conn:
                existing = await self._get(conn, upload.tenant, upload.id)
                if existing is not None:
                    return existing
                await conn.execute(sa.insert(uploads).values(**row))
        except sa.exc.IntegrityError:  # the same file, uploaded twice at once: the other one won
            async with self._connect() as conn:
                existing = await self._get(conn, upload.tenant, upload.id)
            if existing is None:
                raise
            return existing
        return upload

    async def get(self, tenant: str, upload_id: str) -> Upload | None:
        async with self._connect() as conn:
            return await self._get(conn, tenant, upload_id)

    async def recent(self, tenant: str, limit: int) -> list[Upload]:
        query = (
            sa.select(uploads)
            .where(uploads.c.tenant == tenant)
            .order_by(uploads.c.created_at.desc(), uploads.c.id)
            .limit(limit)
        )
        async with self._connect() as conn:
            return [_upload(row) for row in await conn.execute(query)]

    async def job_file(self, tenant: str, asset_id: str) -> Artifact | None:
        async with self._connect() as conn:
            found = await job_asset(conn, tenant, asset_id)
        if found is None:
            return None
        blob = BlobRef(key=found.blob_key, size=found.size, content_type=found.content_type)
        return Artifact(name=found.name, kind=found.kind, blob=blob, meta={"asset": found.id})

    @staticmethod
    async def _get(conn: AsyncConnection, tenant: str, upload_id: str) -> Upload | None:
        query = sa.select(uploads).where(uploads.c.id == upload_id, uploads.c.tenant == tenant)
        row = (await conn.execute(query)).first()
        return _upload(row) if row is not None else None


def _upload(row: sa.Row[tuple[object, ...]]) -> Upload:
    created: datetime = row.created_at
    return Upload(
        id=row.id,
        tenant=row.tenant,
        filename=row.filename,
        info=_info.decode(row.info),
        created_at=utc(created),
    )


class NatsIngest:
    """Asks a media replica to sanitise a staged upload and waits for its answer."""

    def __init__(self, nc: Client, timeout_s: float) -> None:
        self.nc = nc
        self.timeout_s = timeout_s

    async def ingest(self, request: IngestRequest) -> IngestReply:
        try:
            msg = await self.nc.request(INGEST_SUBJECT, msgspec.json.encode(request), timeout=self.timeout_s)
        except NoRespondersError:
            raise Unavailable("No media service is running to take the upload; try again.") from None
        except NatsTimeout:
            raise Unavailable(
                f"The media service did not answer within {self.timeout_s:g} s; try again "
                "(an upload of the same file is the same upload)."
            ) from None
        except NatsError as exc:  # not connected, draining, closed
            raise Unavailable(f"NATS is unreachable ({type(exc).__name__}); try again.") from None
        return ingest_reply_decoder.decode(msg.data)
