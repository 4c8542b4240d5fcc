"""Wires the orchestrator's real adapters; tests use the same function with their own settings."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
import sqlalchemy as sa
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.blobstore import open_blobs
from atelier_contracts.commands import CommandOutcome
from atelier_contracts.envelope import command_decoder, encode, report_decoder
from atelier_contracts.readmodel import make_engine
from atelier_contracts.readmodel import schedules as schedules_table
from atelier_contracts.readmodel import sessions as sessions_table
from atelier_contracts.runtime.consumer import Consumer, ConsumerSpec
from atelier_contracts.runtime.nats import cancelled_jobs, close_quietly, connect, ensure_streams
from atelier_contracts.runtime.service import Part
from atelier_contracts.schedules import ScheduleEvent
from atelier_contracts.sessions import SessionEvent
from atelier_contracts.snapshot import Projected
from atelier_contracts.subjects import (
    JOBS_STREAM,
    PROJECTED_SUBJECT,
    SCHEDULES_STREAM,
    SESSIONS_STREAM,
    schedule_subject,
    session_subject,
)
from atelier_orchestrator.adapters.aggregatelog import AggregateLog
from atelier_orchestrator.adapters.blobgc import release_blobs
from atelier_orchestrator.adapters.commandbus import JetStreamCommandBus
from atelier_orchestrator.adapters.deadlines import SqlDeadlines, SqlDueSchedules, SqlFinished
from atelier_orchestrator.adapters.documents import DocumentProjection
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.adapters.lostwork import LostWork
from atelier_orchestrator.adapters.projection import SqlProjection
from atelier_orchestrator.adapters.queries import JobQueries
from atelier_orchestrator.adapters.replay import read_log
from atelier_orchestrator.adapters.workqueue import JetStreamWorkQueue
from atelier_orchestrator.app.aggregates import AggregateService
from atelier_orchestrator.app.handlers import Clock, Dispatcher, JobService, Relay, utc_now
from atelier_orchestrator.app.retention import Retention
from atelier_orchestrator.app.schedules import ScheduleRelay, ScheduleTicker
from atelier_orchestrator.app.sessions import SessionRelay
from atelier_orchestrator.app.sweeper import DeadlineSweeper
from atelier_orchestrator.config import Settings
from atelier_orchestrator.domain import schedule, session
from atelier_orchestrator.domain.schedule import ScheduleState
from atelier_orchestrator.domain.session import SessionState
from atelier_orchestrator.entrypoints import subscribers as subs

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Orchestrator:
    nc: Client
    engine: AsyncEngine
    consumers: list[Consumer]
    sweeper: DeadlineSweeper
    lost_work: LostWork
    projection: SqlProjection
    queries: JobQueries
    ticker: ScheduleTicker
    documents: list[DocumentProjection[Any, Any]]
    """The read models of sessions and schedules."""
    retention: Retention

    def parts(self) -> list[Part]:
        loops = [self.sweeper.run, self.ticker.run, self.lost_work.run, self.queries.run, self.retention.run]
        return [*(c.run for c in self.consumers), *loops]

    async def check_sql(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await close_quietly(self.nc)
        self.projection.close()
        for documents in self.documents:
            documents.close()
        await self.engine.dispose()


async def bootstrap(settings: Settings, clock: Clock = utc_now) -> Orchestrator:
    """The orchestrator on real NATS and SQL; ``clock`` is the time every decision is made at."""
    nc = await connect(settings.nats_url, name="atelier-orchestrator")
    js = nc.jetstream()
    await ensure_streams(js)
    engine = make_engine(settings.database_url)

    async def reply(subject: str, outcome: CommandOutcome) -> None:
        await nc.publish(subject, encode(outcome))

    async def notify(projected: Projected) -> None:
        with contextlib.suppress(nats.errors.Error):  # readers fall back to polling
            await nc.publish(PROJECTED_SUBJECT, encode(projected))

    def spec(base: ConsumerSpec, concurrency: int | None = None) -> ConsumerSpec:
        return dataclasses.replace(
            base, ack_wait_s=settings.ack_wait_s, concurrency=concurrency or base.concurrency
        )

    bus = JetStreamCommandBus(js)
    dispatcher = Dispatcher(JetStreamWorkQueue(nc, await cancelled_jobs(js)), clock, bus.to_aggregate)
    jobs = JobService(
        JetStreamEventStore(js),
        relay=dispatcher.on_commit,
        clock=clock,
        max_fan_out=settings.max_fan_out,
        commit_budget=settings.max_commit_bytes,
    )
    await retire_consumers(nc, dispatcher.on_commit)
    on_command = subs.on_job_message(jobs, command_decoder, "commands", reply)
    on_report = subs.on_job_message(jobs, report_decoder, "reports")
    projection = SqlProjection(engine)
    sessions_projected, schedules_projected = session_projection(engine), schedule_projection(engine)
    sessions = AggregateService(
        session_log(js), session.decide, SessionRelay(bus.send, clock).on_commit, clock
    )
    schedules = AggregateService(
        schedule_log(js), schedule.decide, ScheduleRelay(bus.send, clock).on_commit, clock
    )

    async def reply_raw(subject: str, payload: bytes) -> None:
        await nc.publish(subject, payload)

    on_session = subs.on_aggregate_command(
        sessions, subs.SESSION_COMMAND_DECODER, session.view_of, "session-commands", reply_raw
    )
    on_schedule = subs.on_aggregate_command(
        schedules, subs.SCHEDULE_COMMAND_DECODER, schedule.view_of, "schedule-commands", reply_raw
    )
    project_sessions = subs.on_documents_project(
        sessions_projected, subs.session_commits, notify, "session-projector"
    )
    project_schedules = subs.on_documents_project(
        schedules_projected, subs.schedule_commits, notify, "schedule-projector"
    )

    consumers = [
        Consumer(nc, spec(subs.COMMANDS, settings.command_concurrency), on_command),
        Consumer(nc, spec(subs.REPORTS, settings.report_concurrency), on_report),
        Consumer(nc, spec(subs.PROJECTOR), batch_handler=subs.on_commits_project(projection, notify)),
        Consumer(nc, spec(subs.SESSION_COMMANDS), on_session),
        Consumer(nc, spec(subs.SESSION_PROJECTOR), batch_handler=project_sessions),
        Consumer(nc, spec(subs.SCHEDULE_COMMANDS), on_schedule),
        Consumer(nc, spec(subs.SCHEDULE_PROJECTOR), batch_handler=project_schedules),
    ]
    ticker = ScheduleTicker(SqlDueSchedules(engine), bus.to_aggregate, clock, settings.schedule_tick_s)
    sweeper = DeadlineSweeper(SqlDeadlines(engine), bus.send, clock, settings.sweep_interval_s)

    blobs = open_blobs(Path(settings.blob_dir)) if settings.blob_dir else None

    async def release() -> int:
        if blobs is None:
            return 0
        report = await release_blobs(engine, blobs, settings.blob_grace_s, dry_run=False)
        if report.released:
            log.info("blobs released", extra=dataclasses.asdict(report))
        return report.released

    retention = Retention(
        SqlFinished(engine), bus.send, release, clock, settings.export_ttl_s, settings.retention_every_s
    )
    return Orchestrator(
        nc=nc,
        engine=engine,
        consumers=consumers,
        sweeper=sweeper,
        lost_work=LostWork(nc),
        projection=projection,
        queries=JobQueries(nc, JetStreamEventStore(js, cache_size=0)),
        ticker=ticker,
        documents=[sessions_projected, schedules_projected],
        retention=retention,
    )


async def retire_consumers(nc: Client, relay: Relay) -> None:
    """Consumers on the log that earlier versions ran: what one had not acked yet is relayed
    (idempotently, like a redelivery), then the consumer is deleted."""
    js = nc.jetstream()
    for durable in subs.RETIRED:
        try:
            info = await js.consumer_info(JOBS_STREAM, durable)
        except nats.js.errors.NotFoundError:
            continue
        async for commit, seq in read_log(nc, after=info.ack_floor.stream_seq if info.ack_floor else 0):
            await relay(commit, seq, None)
        await js.delete_consumer(JOBS_STREAM, durable)
        log.info("retired a consumer of an earlier version", extra={"consumer": durable})


def session_log(js: JetStreamContext) -> AggregateLog[SessionState, SessionEvent]:
    return AggregateLog(js, SESSIONS_STREAM, session_subject, subs.session_commits, session.apply_commit)


def session_projection(engine: AsyncEngine) -> DocumentProjection[SessionState, SessionEvent]:
    return DocumentProjection(engine, sessions_table, _session_state, session.apply_commit)


_session_state = msgspec.json.Decoder(SessionState)


def schedule_log(js: JetStreamContext) -> AggregateLog[ScheduleState, ScheduleEvent]:
    return AggregateLog(js, SCHEDULES_STREAM, schedule_subject, subs.schedule_commits, schedule.apply_commit)


def schedule_projection(engine: AsyncEngine) -> DocumentProjection[ScheduleState, ScheduleEvent]:
    return DocumentProjection(engine, schedules_table, _schedule_state, schedule.apply_commit)


_schedule_state = msgspec.json.Decoder(ScheduleState)
