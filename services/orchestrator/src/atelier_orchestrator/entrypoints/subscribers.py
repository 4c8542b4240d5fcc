"""The orchestrator's stream subscribers: commands, work reports, and the job log (twice)."""

from __future__ import annotations

from typing import Any

import msgspec
from nats.aio.msg import Msg
from prometheus_client import Counter

from atelier_contracts.envelope import commit_decoder
from atelier_contracts.runtime.consumer import ACK, ConsumerSpec, Handler, Outcome, Retry
from atelier_contracts.subjects import COMMANDS_STREAM, JOBS_STREAM, REPORTS_STREAM
from atelier_orchestrator.adapters.projection import Applied, SqlProjection
from atelier_orchestrator.app.handlers import Dispatcher, JobService

Decoder = msgspec.json.Decoder[Any]
MESSAGES = Counter("atelier_orchestrator_messages_total", "Messages handled", ["consumer", "outcome"])

COMMANDS = ConsumerSpec(
    stream=COMMANDS_STREAM, durable="orchestrator-commands", filter_subject="atelier.cmd.>"
)
REPORTS = ConsumerSpec(
    stream=REPORTS_STREAM, durable="orchestrator-reports", filter_subject="atelier.report.>"
)
PROJECTOR = ConsumerSpec(
    stream=JOBS_STREAM, durable="orchestrator-projector", filter_subject="atelier.job.>", concurrency=1
)
DISPATCHER = ConsumerSpec(
    stream=JOBS_STREAM, durable="orchestrator-dispatcher", filter_subject="atelier.job.>"
)


def on_job_message(jobs: JobService, decoder: Decoder, consumer: str) -> Handler:
    """Commands and work reports alike: decide and append (nothing, for a redelivery)."""

    async def handle(msg: Msg) -> Outcome:
        events = await jobs.handle(decoder.decode(msg.data))
        MESSAGES.labels(consumer, "changed" if events else "unchanged").inc()
        return ACK

    return handle


def on_commit_project(projection: SqlProjection) -> Handler:
    async def handle(msg: Msg) -> Outcome:
        outcome = await projection.apply(commit_decoder.decode(msg.data), msg.metadata.sequence.stream)
        MESSAGES.labels("projector", outcome.value).inc()
        return Retry(0.05) if outcome is Applied.OUT_OF_ORDER else ACK

    return handle


def on_commit_dispatch(dispatcher: Dispatcher) -> Handler:
    async def handle(msg: Msg) -> Outcome:
        sent = await dispatcher.on_commit(commit_decoder.decode(msg.data))
        MESSAGES.labels("dispatcher", "dispatched" if sent else "none").inc()
        return ACK

    return handle
