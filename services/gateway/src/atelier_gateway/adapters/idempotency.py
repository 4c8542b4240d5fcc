"""Idempotency records in SQL: the primary key (tenant, key) lets exactly one claim win."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import sqlalchemy as sa

from atelier_contracts.readmodel import idempotency_keys as keys
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.idempotency import ClaimResult, IdempotencyClaim, StoredResponse

log = logging.getLogger(__name__)

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
_ATTEMPTS = 3


class SqlIdempotencyStore(SqlAdapter):
    async def claim(self, claim: IdempotencyClaim) -> ClaimResult:
        for _ in range(_ATTEMPTS):
            if await self._insert(claim):
                return ClaimResult("claimed")
            async with self._connect() as conn:
                row = (await conn.execute(sa.select(keys).where(*_same_key(claim)))).first()
            if row is None:
                continue  # released or pruned since our insert failed: try again
            expired = utc(row.expires_at) <= claim.claimed_at
            abandoned = row.status == IN_PROGRESS and utc(row.created_at) < claim.stale_before
            if expired or abandoned:
                await self._drop(claim, row.created_at)
                continue
            if row.request_hash != claim.request_hash:
                elsewhere = (row.method, row.path) != (claim.method, claim.path)
                return ClaimResult("mismatch", used_on=f"{row.method} {row.path}" if elsewhere else None)
            if row.status == IN_PROGRESS:
                return ClaimResult("in_progress")
            return ClaimResult("completed", _response(row))
        return ClaimResult("in_progress")  # lost every race: another request holds the key now

    async def complete(self, claim: IdempotencyClaim, response: StoredResponse) -> None:
        async with self._begin() as conn:
            done = await conn.execute(
                sa.update(keys)
                .where(*_mine(claim))
                .values(
                    status=COMPLETED,
                    response_status=response.status,
                    response_headers=json.dumps(response.headers),
                    response_body=response.body.decode("utf-8"),
                )
            )
        if not done.rowcount:
            log.warning("idempotency claim was taken over before its response was stored")

    async def release(self, claim: IdempotencyClaim) -> None:
        async with self._begin() as conn:
            await conn.execute(sa.delete(keys).where(*_mine(claim)))

    async def prune(self, now: datetime) -> int:
        async with self._begin() as conn:
            result = await conn.execute(sa.delete(keys).where(keys.c.expires_at <= now))
        return int(result.rowcount or 0)

    async def _insert(self, claim: IdempotencyClaim) -> bool:
        try:
            async with self._begin() as conn:
                await conn.execute(
                    sa.insert(keys).values(
                        tenant=claim.tenant,
                        key=claim.key,
                        method=claim.method,
                        path=claim.path[:500],
                        request_hash=claim.request_hash,
                        status=IN_PROGRESS,
                        created_at=claim.claimed_at,
                        expires_at=claim.expires_at,
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    async def _drop(self, claim: IdempotencyClaim, created_at: object) -> None:
        """Delete a dead row — only the one we looked at, not a fresh claim made since."""
        async with self._begin() as conn:
            await conn.execute(sa.delete(keys).where(*_same_key(claim), keys.c.created_at == created_at))


def _same_key(claim: IdempotencyClaim) -> tuple[sa.ColumnElement[bool], ...]:
    return (keys.c.tenant == claim.tenant, keys.c.key == claim.key)


def _mine(claim: IdempotencyClaim) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        *_same_key(claim),
        keys.c.status == IN_PROGRESS,
        keys.c.request_hash == claim.request_hash,
        keys.c.created_at == claim.claimed_at,
    )


def _response(row: sa.Row[tuple[object, ...]]) -> StoredResponse:
    headers = [(str(name), str(value)) for name, value in json.loads(row.response_headers or "[]")]
    return StoredResponse(
        status=int(row.response_status), headers=headers, body=(row.response_body or "").encode("utf-8")
    )
