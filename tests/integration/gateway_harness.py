"""Shared parts of the gateway's lifecycle tests (no tests here; the name keeps it in their folder).

``FakeOrchestrator`` pulls commands from ATELIER_COMMANDS like the real one and answers on the
reply subject a command carries; rows are written as the projector writes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec
import sqlalchemy as sa
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.commands import Command, CommandOutcome
from atelier_contracts.envelope import Envelope, command_decoder, encode
from atelier_contracts.readmodel import job_tags, jobs
from atelier_contracts.snapshot import JobView
from atelier_contracts.subjects import COMMANDS_STREAM, REPLY_HEADER
from tests.integration.test_gateway_api import T0


def snapshot(
    job_id: str,
    *,
    status: str = "queued",
    kind: str = "story",
    title: str | None = None,
    priority: int = 0,
    tags: Sequence[str] = (),
    created_at: datetime = T0,
    updated_at: datetime | None = None,
    version: int = 1,
) -> JobView:
    return JobView(
        id=job_id,
        tenant="default",
        kind=kind,
        title=title if title is not None else f"job {job_id}",
        input={"prompt": "p"},
        priority=priority,
        tags=list(tags),
        status=status,
        steps={},
        created_at=created_at,
        updated_at=updated_at or created_at,
        version=version,
    )


def _values(snap: JobView, deleted: bool) -> dict[str, object]:
    return {
        "tenant": snap.tenant,
        "kind": snap.kind,
        "title": snap.title,
        "status": snap.status,
        "priority": snap.priority,
        "tags": snap.tags,
        "created_at": snap.created_at,
        "updated_at": snap.updated_at,
        "last_seq": snap.version,
        "snapshot": msgspec.json.encode(snap).decode(),
        "deleted": deleted,
    }


async def put_jobs(engine: AsyncEngine, snaps: Sequence[JobView], *, deleted: bool = False) -> None:
    """Insert rows as the projector would: ``jobs`` plus a ``job_tags`` row per tag of a live job."""
    async with engine.begin() as conn:
        await conn.execute(sa.insert(jobs), [{"id": s.id, **_values(s, deleted)} for s in snaps])
        tag_rows = [
            {"job_id": s.id, "tag": tag, "tenant": s.tenant} for s in snaps if not deleted for tag in s.tags
        ]
        if tag_rows:
            await conn.execute(sa.insert(job_tags), tag_rows)


async def project(engine: AsyncEngine, snap: JobView, *, deleted: bool = False) -> JobView:
    """Apply a decision: the row moves to ``snap`` one sequence further on."""
    async with engine.begin() as conn:
        seq = (await conn.execute(sa.select(jobs.c.last_seq).where(jobs.c.id == snap.id))).scalar_one()
        snap = msgspec.structs.replace(snap, version=seq + 1, deleted=deleted)
        await conn.execute(sa.update(jobs).where(jobs.c.id == snap.id).values(**_values(snap, deleted)))
        await conn.execute(sa.delete(job_tags).where(job_tags.c.job_id == snap.id))
        if snap.tags and not deleted:
            await conn.execute(
                sa.insert(job_tags), [{"job_id": snap.id, "tag": t, "tenant": snap.tenant} for t in snap.tags]
            )
    return snap


@dataclass
class Received:
    envelope: Envelope[Command]
    msg: Msg

    @property
    def reply_to(self) -> str | None:
        return (self.msg.headers or {}).get(REPLY_HEADER)


@dataclass
class FakeOrchestrator:
    nc: Client
    js: JetStreamContext
    seen: list[Envelope[Command]] = field(default_factory=list)

    async def start(self) -> FakeOrchestrator:
        self._sub = await self.js.pull_subscribe("atelier.cmd.>", stream=COMMANDS_STREAM)
        return self

    async def next(self) -> Received:
        [msg] = await self._sub.fetch(1, timeout=10)
        await msg.ack()
        received = Received(command_decoder.decode(msg.data), msg)
        self.seen.append(received.envelope)
        return received

    async def take(self, count: int) -> list[Envelope[Command]]:
        """The next ``count`` commands (fetched in batches), without answering."""
        out: list[Envelope[Command]] = []
        while len(out) < count:
            for msg in await self._sub.fetch(min(count - len(out), 256), timeout=10):
                await msg.ack()
                out.append(command_decoder.decode(msg.data))
        self.seen.extend(out)
        return out

    async def answer(
        self,
        received: Received,
        *,
        accepted: bool = True,
        code: str = "",
        message: str = "",
        events: Sequence[str] = ("event",),
        job: JobView | None = None,
    ) -> None:
        assert received.reply_to, "the command asked for no answer"
        outcome = CommandOutcome(
            msg_id=received.envelope.msg_id,
            job_id=received.envelope.job_id,
            accepted=accepted,
            code=code,
            message=message,
            events=list(events) if accepted else [],
            job=job,
        )
        await self.nc.publish(received.reply_to, encode(outcome))
        await self.nc.flush()

    async def decide(
        self,
        *,
        effect: Callable[[Envelope[Command]], Awaitable[JobView | None]] | None = None,
        accepted: bool = True,
        code: str = "",
        message: str = "",
        events: Sequence[str] = ("event",),
    ) -> Envelope[Command]:
        """Take the next command, apply ``effect`` (the projection), then answer with the job it
        returns, as the orchestrator answers with the job as decided."""
        received = await self.next()
        job = await effect(received.envelope) if effect is not None else None
        await self.answer(received, accepted=accepted, code=code, message=message, events=events, job=job)
        return received.envelope

    async def stored(self) -> int:
        """Commands ever stored in the stream (acked ones included)."""
        return int((await self.js.stream_info(COMMANDS_STREAM)).state.last_seq)


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)
