"""The orchestrator's stream subscribers: commands, work reports, and the job log's projector."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from nats.aio.msg import Msg
from prometheus_client import Counter

from atelier_contracts.aggregates import Addressed, LogCommit
from atelier_contracts.aggregates import Outcome as Outcome_
from atelier_contracts.commands import CommandOutcome
from atelier_contracts.envelope import commit_decoder, encode
from atelier_contracts.runtime.consumer import (
    ACK,
    BatchHandler,
    ConsumerSpec,
    GiveUp,
    Handler,
    Outcome,
    Retry,
    redelivery_delay,
)
from atelier_contracts.runtime.pull import deliveries, stream_sequence
from atelier_contracts.schedules import ScheduleCommand, ScheduleEvent
from atelier_contracts.sessions import SessionCommand, SessionEvent
from atelier_contracts.snapshot import Projected
from atelier_contracts.subjects import (
    COMMANDS_STREAM,
    JOBS_STREAM,
    REPLY_HEADER,
    REPORTS_STREAM,
    SCHEDULES_STREAM,
    SESSIONS_STREAM,
)
from atelier_orchestrator.adapters.documents import DocumentProjection
from atelier_orchestrator.adapters.projection import Applied, SqlProjection
from atelier_orchestrator.app.aggregates import AggregateService
from atelier_orchestrator.app.handlers import JobService
from atelier_orchestrator.domain.aggregate import Versioned
from atelier_orchestrator.domain.decide import Rejected
from atelier_orchestrator.domain.snapshot import view_of

log = logging.getLogger(__name__)

Decoder = msgspec.json.Decoder[Any]
MESSAGES = Counter("atelier_orchestrator_messages_total", "Messages handled", ["consumer", "outcome"])

MAX_MESSAGE_BYTES = 256 * 1024
"""The largest command or report taken (the gateway sends at most 64 KiB of job input)."""
COMMANDS = ConsumerSpec(
    stream=COMMANDS_STREAM,
    durable="orchestrator-commands",
    filter_subject="atelier.cmd.>",
    max_bytes=MAX_MESSAGE_BYTES,
)
REPORTS = ConsumerSpec(
    stream=REPORTS_STREAM,
    durable="orchestrator-reports",
    filter_subject="atelier.report.>",
    max_bytes=MAX_MESSAGE_BYTES,
)
PROJECTOR = ConsumerSpec(
    stream=JOBS_STREAM,
    durable="orchestrator-projector",
    filter_subject="atelier.job.>",
    concurrency=500,
    dead_after=50,
    gather_s=0.005,
)
"""A batch handler: ``concurrency`` is the most commits written in one transaction, gathered
for up to 5 ms (a transaction costs ~0.5 ms of CPU however few commits it holds). A commit
waits up to ~7 minutes (50 deliveries, the delay growing to 10 s) for an earlier one of its job
before it is a dead letter; ``atelier-orchestrator dead-letters --redrive`` re-applies it."""
SESSION_COMMANDS = ConsumerSpec(
    stream=COMMANDS_STREAM,
    durable="orchestrator-session-commands",
    filter_subject="atelier.sessioncmd.>",
    max_bytes=MAX_MESSAGE_BYTES,
)
SESSION_PROJECTOR = ConsumerSpec(
    stream=SESSIONS_STREAM,
    durable="orchestrator-session-projector",
    filter_subject="atelier.session.>",
    concurrency=100,
    dead_after=50,
)
SCHEDULE_COMMANDS = ConsumerSpec(
    stream=COMMANDS_STREAM,
    durable="orchestrator-schedule-commands",
    filter_subject="atelier.schedulecmd.>",
    max_bytes=MAX_MESSAGE_BYTES,
)
SCHEDULE_PROJECTOR = ConsumerSpec(
    stream=SCHEDULES_STREAM,
    durable="orchestrator-schedule-projector",
    filter_subject="atelier.schedule.>",
    concurrency=100,
    dead_after=50,
)
RETIRED = ("orchestrator-dispatcher",)
"""Durable consumers of earlier versions, drained and deleted at start (``retire_consumers``)."""


Reply = Callable[[str, CommandOutcome], Awaitable[None]]


def on_job_message(jobs: JobService, decoder: Decoder, consumer: str, reply: Reply | None = None) -> Handler:
    """Commands and work reports alike: decide and append (nothing, for a redelivery).

    A refused command is acked (retrying cannot change the answer) and, like an accepted one,
    answered on the subject its sender named in ``REPLY_HEADER``.
    """

    async def handle(msg: Msg) -> Outcome:
        try:
            envelope = decoder.decode(msg.data)
        except msgspec.DecodeError as exc:  # ValidationError included: redelivery cannot mend it
            MESSAGES.labels(consumer, "undecodable").inc()
            return GiveUp(f"undecodable: {exc}")
        reply_to = (msg.headers or {}).get(REPLY_HEADER) if reply else None
        try:
            decision = await jobs.handle(envelope, redelivered=deliveries(msg) > 1)
        except Rejected as exc:
            MESSAGES.labels(consumer, "rejected").inc()
            log.info(
                "command refused: %s", exc.code, extra={"job_id": envelope.job_id, "reason": exc.message}
            )
            outcome = CommandOutcome(
                msg_id=envelope.msg_id,
                job_id=envelope.job_id,
                accepted=False,
                code=exc.code,
                message=exc.message,
            )
        else:
            MESSAGES.labels(consumer, "changed" if decision.events else "unchanged").inc()
            if not reply_to:
                return ACK  # nobody waits: the job's view is not built (2.6 % of the CPU at 200 jobs/s)
            outcome = CommandOutcome(
                msg_id=envelope.msg_id,
                job_id=envelope.job_id,
                accepted=True,
                events=[type(e).__name__ for e in decision.events],
                job=view_of(decision.job) if decision.job is not None else None,
            )
        if reply is not None and reply_to:
            await reply(reply_to, outcome)
        return ACK

    return handle


Notify = Callable[[Projected], Awaitable[None]]


def on_commits_project(projection: SqlProjection, notify: Notify) -> BatchHandler:
    """Everything that arrived, in one transaction; then readers waiting for it are told."""

    async def handle(msgs: list[Msg]) -> list[Outcome]:
        commits = [(commit_decoder.decode(m.data), stream_sequence(m)) for m in msgs]
        try:
            outcomes: list[Applied | None] = list(await projection.apply_batch(commits))
        except Exception:
            # One bad commit must not hold back the others: apply them one by one, and let only
            # the failing ones be redelivered.
            log.exception("a projection batch failed; applying its commits one by one")
            outcomes = []
            for item in commits:
                try:
                    outcomes.extend(await projection.apply_batch([item]))
                except Exception:
                    log.exception("projecting a commit failed", extra={"job_id": item[0].job_id})
                    outcomes.append(None)
        applied = {
            c.job_id: seq for (c, seq), o in zip(commits, outcomes, strict=True) if o is Applied.APPLIED
        }
        if applied:
            await notify(Projected(jobs=applied))
        for outcome in outcomes:
            MESSAGES.labels("projector", outcome.value if outcome else "failed").inc()
        return [_projected(m, o) for m, o in zip(msgs, outcomes, strict=True)]

    return handle


def _projected(msg: Msg, outcome: Applied | None) -> Outcome:
    if outcome is None:  # failed: again later, ever later
        return Retry(redelivery_delay(deliveries(msg)), "projecting the commit failed")
    if outcome is Applied.OUT_OF_ORDER:  # an earlier commit of the job is not applied yet
        delivered = deliveries(msg)
        delay = 0.05 if delivered < 10 else redelivery_delay(delivered - 9)
        return Retry(delay, "an earlier commit of the job was never applied")
    return ACK


RawReply = Callable[[str, bytes], Awaitable[None]]
session_commits = msgspec.json.Decoder(LogCommit[SessionEvent])
schedule_commits = msgspec.json.Decoder(LogCommit[ScheduleEvent])
SESSION_COMMAND_DECODER = msgspec.json.Decoder(Addressed[SessionCommand])
SCHEDULE_COMMAND_DECODER = msgspec.json.Decoder(Addressed[ScheduleCommand])

S = TypeVar("S", bound=Versioned)
C = TypeVar("C")
E = TypeVar("E")
V = TypeVar("V")


def on_aggregate_command(
    service: AggregateService[S, C, E],
    decoder: msgspec.json.Decoder[Addressed[C]],
    view_of: Callable[[S], V],
    consumer: str,
    reply: RawReply | None = None,
) -> Handler:
    """A session's or schedule's commands, decided like a job's: a refusal is acked (retrying
    cannot change it) and, like an acceptance, answered where the sender asked."""

    async def handle(msg: Msg) -> Outcome:
        try:
            command = decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            MESSAGES.labels(consumer, "undecodable").inc()
            return GiveUp(f"undecodable: {exc}")
        try:
            decided = await service.handle(command, redelivered=deliveries(msg) > 1)
        except Rejected as exc:
            MESSAGES.labels(consumer, "rejected").inc()
            outcome = Outcome_[V](
                msg_id=command.msg_id, to=command.to, accepted=False, code=exc.code, message=exc.message
            )
        else:
            MESSAGES.labels(consumer, "changed" if decided.events else "unchanged").inc()
            view = view_of(decided.state) if decided.state is not None else None
            outcome = Outcome_[V](msg_id=command.msg_id, to=command.to, accepted=True, view=view)
        reply_to = (msg.headers or {}).get(REPLY_HEADER)
        if reply and reply_to:
            await reply(reply_to, encode(outcome))
        return ACK

    return handle


def on_documents_project(
    projection: DocumentProjection[S, E],
    decoder: msgspec.json.Decoder[LogCommit[E]],
    notify: Notify,
    consumer: str,
) -> BatchHandler:
    """Like the job projector: one transaction, then readers waiting for it are told."""

    async def handle(msgs: list[Msg]) -> list[Outcome]:
        commits = [(decoder.decode(m.data), stream_sequence(m)) for m in msgs]
        outcomes: list[Applied | None]
        try:
            outcomes = list(await projection.apply_batch(commits))
        except Exception:
            log.exception("projecting commits failed", extra={"consumer": consumer})
            outcomes = [None] * len(msgs)
        applied = {c.to: seq for (c, seq), o in zip(commits, outcomes, strict=True) if o is Applied.APPLIED}
        if applied:
            await notify(Projected(jobs=applied))
        for outcome in outcomes:
            MESSAGES.labels(consumer, outcome.value if outcome else "failed").inc()
        return [_projected(m, o) for m, o in zip(msgs, outcomes, strict=True)]

    return handle
