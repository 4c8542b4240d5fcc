"""Wires the orchestrator's real adapters; tests use the same function with their own settings."""

from __future__ import annotations

import contextlib
import dataclasses

import nats.errors
import sqlalchemy as sa
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.commands import CommandOutcome
from atelier_contracts.envelope import command_decoder, encode, report_decoder
from atelier_contracts.readmodel import make_engine
from atelier_contracts.runtime.consumer import Consumer, ConsumerSpec
from atelier_contracts.runtime.nats import cancelled_jobs, close_quietly, connect, ensure_streams
from atelier_contracts.runtime.service import Part
from atelier_contracts.snapshot import Projected
from atelier_contracts.subjects import PROJECTED_SUBJECT
from atelier_orchestrator.adapters.commandbus import JetStreamCommandBus
from atelier_orchestrator.adapters.deadlines import SqlDeadlines
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.adapters.lostwork import LostWork
from atelier_orchestrator.adapters.projection import SqlProjection
from atelier_orchestrator.adapters.workqueue import JetStreamWorkQueue
from atelier_orchestrator.app.handlers import Dispatcher, JobService, utc_now
from atelier_orchestrator.app.sweeper import DeadlineSweeper
from atelier_orchestrator.config import Settings
from atelier_orchestrator.entrypoints import subscribers as subs


@dataclasses.dataclass
class Orchestrator:
    nc: Client
    engine: AsyncEngine
    consumers: list[Consumer]
    sweeper: DeadlineSweeper
    lost_work: LostWork
    projection: SqlProjection

    def parts(self) -> list[Part]:
        return [*(c.run for c in self.consumers), self.sweeper.run, self.lost_work.run]

    async def check_sql(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await close_quietly(self.nc)
        self.projection.close()
        await self.engine.dispose()


async def bootstrap(settings: Settings) -> Orchestrator:
    nc = await connect(settings.nats_url, name="atelier-orchestrator")
    js = nc.jetstream()
    await ensure_streams(js)
    engine = make_engine(settings.database_url)
    jobs = JobService(JetStreamEventStore(js))

    async def reply(subject: str, outcome: CommandOutcome) -> None:
        await nc.publish(subject, encode(outcome))

    async def notify(projected: Projected) -> None:
        with contextlib.suppress(nats.errors.Error):  # readers fall back to polling
            await nc.publish(PROJECTED_SUBJECT, encode(projected))

    def spec(base: ConsumerSpec, concurrency: int | None = None) -> ConsumerSpec:
        return dataclasses.replace(
            base, ack_wait_s=settings.ack_wait_s, concurrency=concurrency or base.concurrency
        )

    on_command = subs.on_job_message(jobs, command_decoder, "commands", reply)
    on_report = subs.on_job_message(jobs, report_decoder, "reports")
    dispatcher = Dispatcher(JetStreamWorkQueue(nc, await cancelled_jobs(js)))
    projection = SqlProjection(engine)
    consumers = [
        Consumer(nc, spec(subs.COMMANDS, settings.command_concurrency), on_command),
        Consumer(nc, spec(subs.REPORTS, settings.report_concurrency), on_report),
        Consumer(nc, spec(subs.PROJECTOR), batch_handler=subs.on_commits_project(projection, notify)),
        Consumer(nc, spec(subs.DISPATCHER), subs.on_commit_dispatch(dispatcher)),
    ]
    sweeper = DeadlineSweeper(
        SqlDeadlines(engine), JetStreamCommandBus(js).send, utc_now, settings.sweep_interval_s
    )
    return Orchestrator(
        nc=nc,
        engine=engine,
        consumers=consumers,
        sweeper=sweeper,
        lost_work=LostWork(nc, jobs.handle),
        projection=projection,
    )
