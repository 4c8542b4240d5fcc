"""Projects commits into the SQL read models, recording the applied sequence in the same transaction.

Commits of one job must be applied in order. A commit names the sequence of the job's previous
commit (``prev_seq``); the projection applies it only when that is what it last applied, skips
it when it applied it already, and asks for it again later when an earlier one is missing.
"""

from __future__ import annotations

import enum

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from atelier_contracts.budgets import project_of
from atelier_contracts.envelope import encode
from atelier_contracts.events import (
    Commit,
    EventRecord,
    JobRequeued,
    ProviderCalled,
    StepRetryRequested,
    StepSucceeded,
)
from atelier_contracts.ids import asset_id
from atelier_contracts.readmodel import assets, job_events, job_tags, jobs, provider_calls
from atelier_contracts.snapshot import JobSnapshot, snapshot_decoder
from atelier_orchestrator.domain.state import apply_commit


class Applied(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


def _event_type(event: msgspec.Struct) -> str:
    return str(type(event).__struct_config__.tag)


class SqlProjection:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def apply(self, commit: Commit, seq: int) -> Applied:
        async with self.engine.begin() as conn:
            return await apply_in(conn, commit, seq)


async def apply_in(conn: AsyncConnection, commit: Commit, seq: int) -> Applied:
    row = (
        await conn.execute(sa.select(jobs.c.last_seq, jobs.c.snapshot).where(jobs.c.id == commit.job_id))
    ).first()
    state: JobSnapshot | None = None
    if row is not None:
        if seq <= row.last_seq:
            return Applied.DUPLICATE
        if commit.prev_seq != row.last_seq:
            return Applied.OUT_OF_ORDER
        state = snapshot_decoder.decode(row.snapshot)
    elif commit.prev_seq != 0:
        return Applied.OUT_OF_ORDER
    new = apply_commit(state, commit, seq)
    values = {
        "tenant": new.tenant,
        "kind": new.kind,
        "title": new.title,
        "status": new.status,
        "priority": new.priority,
        "tags": new.tags,
        "created_at": new.created_at,
        "updated_at": new.updated_at,
        "last_seq": seq,
        "snapshot": encode(new).decode(),
        "next_deadline_at": new.next_deadline,
        "deleted": new.deleted,
    }
    if row is None:
        await conn.execute(sa.insert(jobs).values(id=new.id, **values))
    else:
        await conn.execute(sa.update(jobs).where(jobs.c.id == new.id).values(**values))
    await conn.execute(
        sa.insert(job_events),
        [
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
        ],
    )
    calls = [r for r in commit.events if isinstance(r.event, ProviderCalled)]
    if calls:
        await _record_calls(conn, new, calls)
    for record in commit.events:
        event = record.event
        if isinstance(event, StepSucceeded):
            await _record_assets(conn, commit, event)
        elif isinstance(event, StepRetryRequested | JobRequeued):
            # The steps run anew: their old outputs are no longer the job's assets.
            await conn.execute(
                sa.delete(assets).where(assets.c.job_id == commit.job_id, assets.c.step.in_(event.reset))
            )
    if state is None or state.tags != new.tags or new.deleted != state.deleted:
        await _record_tags(conn, new)
    return Applied.APPLIED


async def _record_calls(conn: AsyncConnection, job: JobSnapshot, records: list[EventRecord]) -> None:
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
    await conn.execute(sa.insert(provider_calls), rows)


async def _record_tags(conn: AsyncConnection, job: JobSnapshot) -> None:
    await conn.execute(sa.delete(job_tags).where(job_tags.c.job_id == job.id))
    if job.tags and not job.deleted:
        rows = [{"job_id": job.id, "tag": tag, "tenant": job.tenant} for tag in dict.fromkeys(job.tags)]
        await conn.execute(sa.insert(job_tags), rows)


async def _record_assets(conn: AsyncConnection, commit: Commit, event: StepSucceeded) -> None:
    for artifact in event.outputs:
        aid = asset_id(commit.job_id, event.step, artifact.name)
        await conn.execute(sa.delete(assets).where(assets.c.id == aid))
        await conn.execute(
            sa.insert(assets).values(
                id=aid,
                job_id=commit.job_id,
                step=event.step,
                name=artifact.name,
                kind=artifact.kind,
                content_type=artifact.blob.content_type,
                blob_key=artifact.blob.key,
                size=artifact.blob.size,
                created_at=commit.at,
            )
        )
