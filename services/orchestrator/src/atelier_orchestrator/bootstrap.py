"""Wires the orchestrator's real adapters; tests use the same function with their own settings."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.envelope import command_decoder, report_decoder
from atelier_contracts.readmodel import make_engine
from atelier_contracts.runtime.consumer import Consumer, ConsumerSpec
from atelier_contracts.runtime.nats import close_quietly, connect, ensure_streams
from atelier_contracts.runtime.service import Part
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.adapters.projection import SqlProjection
from atelier_orchestrator.adapters.workqueue import JetStreamWorkQueue
from atelier_orchestrator.app.handlers import Dispatcher, JobService
from atelier_orchestrator.config import Settings
from atelier_orchestrator.entrypoints import subscribers as subs


@dataclasses.dataclass
class Orchestrator:
    nc: Client
    engine: AsyncEngine
    consumers: list[Consumer]

    def parts(self) -> list[Part]:
        return [c.run for c in self.consumers]

    async def check_sql(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await close_quietly(self.nc)
        await self.engine.dispose()


async def bootstrap(settings: Settings) -> Orchestrator:
    nc = await connect(settings.nats_url, name="atelier-orchestrator")
    js = nc.jetstream()
    await ensure_streams(js)
    engine = make_engine(settings.database_url)
    jobs = JobService(JetStreamEventStore(js))

    def spec(base: ConsumerSpec, concurrency: int | None = None) -> ConsumerSpec:
        return dataclasses.replace(
            base, ack_wait_s=settings.ack_wait_s, concurrency=concurrency or base.concurrency
        )

    dispatcher = Dispatcher(JetStreamWorkQueue(js))
    consumers = [
        Consumer(
            js,
            spec(subs.COMMANDS, settings.command_concurrency),
            subs.on_job_message(jobs, command_decoder, "commands"),
        ),
        Consumer(
            js,
            spec(subs.REPORTS, settings.report_concurrency),
            subs.on_job_message(jobs, report_decoder, "reports"),
        ),
        Consumer(js, spec(subs.PROJECTOR), subs.on_commit_project(SqlProjection(engine))),
        Consumer(js, spec(subs.DISPATCHER), subs.on_commit_dispatch(dispatcher)),
    ]
    return Orchestrator(nc=nc, engine=engine, consumers=consumers)
