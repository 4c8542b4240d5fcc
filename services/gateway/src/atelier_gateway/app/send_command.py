"""Send a command about an existing job and answer with what the orchestrator decided.

The command is stored in JetStream with a reply subject; the orchestrator answers with a
``CommandOutcome`` that carries the job as decided. Refused: the refusal as an error. No answer
in time: the job as it was — the command is stored and will still be decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from atelier_contracts import ids
from atelier_contracts.commands import Command
from atelier_contracts.envelope import Envelope
from atelier_contracts.snapshot import JobView
from atelier_gateway.app.errors import REFUSALS, IllegalTransition, JobNotFound
from atelier_gateway.app.ports import CommandPublisher, JobLog, JobReader
from atelier_gateway.app.read_job import read_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobCommandInput:
    tenant: str
    job_id: str
    request_id: str
    body: Command
    msg_id: str | None = None
    """A stable message id (from an idempotency key); a fresh one when None."""


@dataclass(frozen=True)
class CommandTiming:
    reply_wait_s: float
    """How long to wait for the orchestrator's outcome."""
    read_wait_s: float
    """How long the read before the command waits for the read model to catch up with the log."""


@dataclass(frozen=True)
class JobCommandResult:
    job: JobView | None
    """The job after the command (None once it is deleted)."""
    decided: bool
    """True when the orchestrator answered in time."""
    shows_decision: bool = False
    """True when ``job`` is the job as decided (an answer without the job leaves it as it was)."""
    events: tuple[str, ...] = ()


def command_envelope(
    tenant: str, job_id: str, request_id: str, body: Command, now: datetime, msg_id: str | None = None
) -> Envelope[Command]:
    return Envelope[Command](
        msg_id=msg_id or ids.new_message_id(),
        job_id=job_id,
        tenant=tenant,
        correlation_id=request_id,
        causation_id=None,
        sent_at=now,
        body=body,
    )


async def send_job_command(
    cmd: JobCommandInput,
    *,
    publisher: CommandPublisher,
    reader: JobReader,
    joblog: JobLog,
    clock: Callable[[], datetime],
    timing: CommandTiming,
) -> JobCommandResult:
    before = await read_job(cmd.tenant, cmd.job_id, reader=reader, joblog=joblog, wait_s=timing.read_wait_s)
    if before is None:  # unknown or deleted: nothing to ask the orchestrator
        raise JobNotFound(f"No job {cmd.job_id!r}.")
    envelope = command_envelope(cmd.tenant, cmd.job_id, cmd.request_id, cmd.body, clock(), cmd.msg_id)
    outcome = await publisher.request(envelope, timing.reply_wait_s)
    extra = {"job_id": cmd.job_id, "request_id": cmd.request_id, "command": type(cmd.body).__name__}
    if outcome is None:
        log.info("no outcome in time; the command is stored and will be decided", extra=extra)
        return JobCommandResult(job=before, decided=False)
    if not outcome.accepted:
        log.info("command refused: %s", outcome.code, extra=extra)
        raise REFUSALS.get(outcome.code, IllegalTransition)(outcome.message or None)
    job = outcome.job if outcome.job is not None else before
    return JobCommandResult(
        job=None if job.deleted else job,
        decided=True,
        shows_decision=outcome.job is not None,
        events=tuple(outcome.events),
    )
