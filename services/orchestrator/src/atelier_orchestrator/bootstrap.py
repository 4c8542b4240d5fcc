"""Wires the orchestrator's real adapters; tests use the same function with their own settings."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import msgspec
import nats.errors
import nats.js.errors
import sqlalchemy as sa
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.commands import CommandOutcome
from atelier_contracts.envelope import command_decoder, encode, report_decoder
from atelier_contracts.readmodel import make_engine
from atelier_contracts.readmodel import sessions as sessions_table
from atelier_contracts.runtime.consumer import Consumer, ConsumerSpec
from atelier_contracts.runtime.nats import cancelled_jobs, close_quietly, connect, ensure_streams
from atelier_contracts.runtime.service import Part
from atelier_contracts.sessions import SessionEvent
from atelier_contracts.snapshot import Projected
from atelier_contracts.subjects import JOBS_STREAM, PROJECTED_SUBJECT, SESSIONS_STREAM, session_subject
from atelier_orchestrator.adapters.aggregatelog import AggregateLog
from atelier_orchestrator.adapters.commandbus import JetStreamCommandBus
from atelier_orchestrator.adapters.deadlines import SqlDeadlines
from atelier_orchestrator.adapters.documents import DocumentProjection
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from atelier_orchestrator.adapters.lostwork import LostWork
from atelier_orchestrator.adapters.projection import SqlProjection
from atelier_orchestrator.adapters.queries import JobQueries
from atelier_orchestrator.adapters.replay import read_log
from atelier_orchestrator.adapters.workqueue import JetStreamWorkQueue
from atelier_orchestrator.app.aggregates import AggregateService
from atelier_orchestrator.app.handlers import Dispatcher, JobService, Relay, utc_now
from atelier_orchestrator.app.sessions import SessionRelay
from atelier_orchestrator.app.sweeper import DeadlineSweeper
from atelier_orchestrator.config import Settings
from atelier_orchestrator.domain import session
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
    session_projection: DocumentProjection[SessionState, SessionEvent]

    def parts(self) -> list[Part]:
        return [*(c.run for c in self.consumers), self.sweeper.run, self.lost_work.run, self.queries.run]

    async def check_sql(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await close_quietly(self.nc)
        self.projection.close()
        self.session_projection.close()
        await self.engine.dispose()


async def bootstrap(settings: Settings) -> Orchestrator:
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
    dispatcher = Dispatcher(JetStreamWorkQueue(nc, await cancelled_jobs(js)), to_session=bus.to_session)
    jobs = JobService(
        JetStreamEventStore(js),
        relay=dispatcher.on_commit,
        max_fan_out=settings.max_fan_out,
        commit_budget=settings.max_commit_bytes,
    )
    await retire_consumers(nc, dispatcher.on_commit)
    on_command = subs.on_job_message(jobs, command_decoder, "commands", reply)
    on_report = subs.on_job_message(jobs, report_decoder, "reports")
    projection = SqlProjection(engine)
    sessions_projected = session_projection(engine)
    sessions = AggregateService(
        session_log(js), session.decide, SessionRelay(bus.send, utc_now).on_commit, utc_now
    )

    async def reply_raw(subject: str, payload: bytes) -> None:
        await nc.publish(subject, payload)

    consumers = [
        Consumer(nc, spec(subs.COMMANDS, settings.command_concurrency), on_command),
        Consumer(nc, spec(subs.REPORTS, settings.report_concurrency), on_report),
        Consumer(nc, spec(subs.PROJECTOR), batch_handler=subs.on_commits_project(projection, notify)),
        Consumer(nc, spec(subs.SESSION_COMMANDS), subs.on_session_command(sessions, reply_raw)),
        Consumer(
            nc,
            spec(subs.SESSION_PROJECTOR),
            batch_handler=subs.on_session_commits_project(sessions_projected, notify),
        ),
    ]
    sweeper = DeadlineSweeper(SqlDeadlines(engine), bus.send, utc_now, settings.sweep_interval_s)
    return Orchestrator(
        nc=nc,
        engine=engine,
        consumers=consumers,
        sweeper=sweeper,
        lost_work=LostWork(nc),
        projection=projection,
        queries=JobQueries(nc, JetStreamEventStore(js, cache_size=0)),
        session_projection=sessions_projected,
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
    return DocumentProjection(engine, sessions_table, _session_state, session.apply_commit, session.columns)


_session_state = msgspec.json.Decoder(SessionState)
