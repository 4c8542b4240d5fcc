"""Webhook endpoints, deliveries and attempts in SQL (the gateway's own tables).

A delivery's id is derived from (endpoint, event), so the fan-out may see a commit twice and
still make one delivery. Senders claim a due delivery by moving its ``claimed_until`` forward
in one conditional update: of two replicas, one wins.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Row

from atelier_contracts.readmodel import webhook_attempts, webhook_deliveries, webhook_endpoints
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.webhooks import Attempt, Delivery, Endpoint

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class SqlWebhooks(SqlAdapter):
    # -- endpoints ---------------------------------------------------------------------------
    async def add_endpoint(self, endpoint: Endpoint) -> None:
        async with self._begin() as conn:
            await conn.execute(sa.insert(webhook_endpoints).values(**_endpoint_row(endpoint)))

    async def endpoints(self, tenant: str | None = None) -> list[Endpoint]:
        query = sa.select(webhook_endpoints).order_by(webhook_endpoints.c.created_at)
        if tenant is not None:
            query = query.where(webhook_endpoints.c.tenant == tenant)
        async with self._connect() as conn:
            return [_endpoint(r) for r in (await conn.execute(query)).all()]

    async def endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        query = sa.select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.tenant == tenant
        )
        async with self._connect() as conn:
            row = (await conn.execute(query)).first()
        return _endpoint(row) if row else None

    async def update_endpoint(self, endpoint: Endpoint) -> None:
        async with self._begin() as conn:
            await conn.execute(
                sa.update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint.id)
                .values(**_endpoint_row(endpoint))
            )

    async def remove_endpoint(self, tenant: str, endpoint_id: str) -> bool:
        async with self._begin() as conn:
            gone = await conn.execute(
                sa.delete(webhook_endpoints).where(
                    webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.tenant == tenant
                )
            )
            if not gone.rowcount:  # not this tenant's: its log stays too
                return False
            ids = sa.select(webhook_deliveries.c.id).where(webhook_deliveries.c.endpoint_id == endpoint_id)
            await conn.execute(sa.delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids)))
            await conn.execute(
                sa.delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
            )
        return bool(gone.rowcount)

    # -- deliveries ----------------------------------------------------------------------------
    async def add_deliveries(self, deliveries: list[Delivery]) -> int:
        """Store the deliveries not stored yet; how many were new."""
        if not deliveries:
            return 0
        async with self._begin() as conn:
            known = set(
                (
                    await conn.execute(
                        sa.select(webhook_deliveries.c.id).where(
                            webhook_deliveries.c.id.in_([d.id for d in deliveries])
                        )
                    )
                ).scalars()
            )
            fresh = [d for d in deliveries if d.id not in known]
            if fresh:
                await conn.execute(sa.insert(webhook_deliveries), [_delivery_row(d) for d in fresh])
        return len(fresh)

    async def due_endpoints(self, now: datetime) -> set[str]:
        """The endpoints with a delivery due and unclaimed now (one query for all of them)."""
        query = sa.select(webhook_deliveries.c.endpoint_id).distinct().where(*_due(now))
        async with self._connect() as conn:
            return set((await conn.execute(query)).scalars())

    async def claim_due(self, endpoint_id: str, now: datetime, lease_s: float, limit: int) -> list[Delivery]:
        """Up to ``limit`` of the endpoint's due deliveries, each claimed for ``lease_s``."""
        free = _unclaimed(now)
        due = (
            sa.select(webhook_deliveries)
            .where(webhook_deliveries.c.endpoint_id == endpoint_id, *_due(now))
            .order_by(webhook_deliveries.c.next_attempt_at)
            .limit(limit)
        )
        claimed = []
        async with self._begin() as conn:
            for row in (await conn.execute(due)).all():
                won = await conn.execute(
                    sa.update(webhook_deliveries)
                    .where(webhook_deliveries.c.id == row.id, free)
                    .values(claimed_until=now + timedelta(seconds=lease_s))
                )
                if won.rowcount:
                    claimed.append(_delivery(row))
        return claimed

    async def finish_attempt(
        self, delivery: Delivery, attempt: Attempt, *, status: str, next_attempt_at: datetime | None
    ) -> None:
        """Record an attempt and what follows it: delivered, failed for good, or tried again."""
        async with self._begin() as conn:
            # Numbered from the log itself: an attempt of a replay may overlap one in flight.
            done = await conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(webhook_attempts.c.n), 0)).where(
                    webhook_attempts.c.delivery_id == delivery.id
                )
            )
            n = int(done.scalar_one()) + 1
            values: dict[str, object] = {"attempts": n, "status": status, "claimed_until": None}
            if next_attempt_at is not None:
                values["next_attempt_at"] = next_attempt_at
            if status != PENDING:
                values["finished_at"] = attempt.at
            await conn.execute(
                sa.insert(webhook_attempts).values(
                    delivery_id=delivery.id,
                    n=n,
                    at=attempt.at,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=_printable(attempt.error)[:500],
                )
            )
            await conn.execute(
                sa.update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id).values(**values)
            )

    async def deliveries(
        self, endpoint_id: str, status: str | None, limit: int
    ) -> list[tuple[Delivery, list[Attempt]]]:
        """The endpoint's newest deliveries with their attempts."""
        query = (
            sa.select(webhook_deliveries)
            .where(webhook_deliveries.c.endpoint_id == endpoint_id)
            .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id)
            .limit(limit)
        )
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).all()
            attempts = (
                await conn.execute(
                    sa.select(webhook_attempts)
                    .where(webhook_attempts.c.delivery_id.in_([r.id for r in rows]))
                    .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.n)
                )
            ).all()
        by_delivery: dict[str, list[Attempt]] = {}
        for a in attempts:
            by_delivery.setdefault(a.delivery_id, []).append(
                Attempt(
                    n=a.n, at=utc(a.at), status_code=a.status_code, latency_ms=a.latency_ms, error=a.error
                )
            )
        return [(_delivery(r), by_delivery.get(r.id, [])) for r in rows]

    async def replay(self, endpoint_id: str, delivery_id: str, now: datetime) -> Delivery | None:
        """Send a delivery again now (its attempts so far stay in its log)."""
        async with self._begin() as conn:
            done = await conn.execute(
                sa.update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.endpoint_id == endpoint_id
                )
                .values(status=PENDING, next_attempt_at=now, claimed_until=None, finished_at=None)
            )
            if not done.rowcount:
                return None
            row = (
                await conn.execute(
                    sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
                )
            ).one()
        return _delivery(row)


def _unclaimed(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(webhook_deliveries.c.claimed_until.is_(None), webhook_deliveries.c.claimed_until < now)


def _due(now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        webhook_deliveries.c.status == PENDING,
        webhook_deliveries.c.next_attempt_at <= now,
        _unclaimed(now),
    )


def _endpoint_row(e: Endpoint) -> dict[str, object]:
    return {
        "id": e.id,
        "tenant": e.tenant,
        "url": e.url,
        "events": json.dumps(e.events),
        "secret": e.secret,
        "description": e.description,
        "enabled": e.enabled,
        "created_at": e.created_at,
    }


def _endpoint(row: Row[tuple[object, ...]]) -> Endpoint:
    return Endpoint(
        id=row.id,
        tenant=row.tenant,
        url=row.url,
        events=json.loads(row.events),
        secret=row.secret,
        description=row.description,
        enabled=bool(row.enabled),
        created_at=utc(row.created_at),
    )


def _delivery_row(d: Delivery) -> dict[str, object]:
    return {
        "id": d.id,
        "endpoint_id": d.endpoint_id,
        "tenant": d.tenant,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "job_id": d.job_id,
        "payload": d.payload,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "claimed_until": None,
        "created_at": d.created_at,
        "finished_at": d.finished_at,
    }


def _delivery(row: Row[tuple[object, ...]]) -> Delivery:
    return Delivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        tenant=row.tenant,
        event_id=row.event_id,
        event_type=row.event_type,
        job_id=row.job_id,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=utc(row.next_attempt_at),
        created_at=utc(row.created_at),
        finished_at=utc(row.finished_at) if row.finished_at else None,
    )


def _printable(text: str) -> str:
    """What a receiver said, without the control characters PostgreSQL's text refuses (NUL)."""
    return "".join(c if c.isprintable() else " " for c in text)
