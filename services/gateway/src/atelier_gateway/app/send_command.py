"""Send a command about an existing job and answer with what the orchestrator decided.

The command is stored in JetStream with a reply subject; the orchestrator answers with a
``CommandOutcome``. Accepted: the job as the read model shows it once the projection has moved
past where it stood before (waited for briefly). Refused: the refusal as an error. No answer in
time: the job as it is now — the command is stored and will still be decided.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from atelier_contracts import ids
from atelier_contracts.commands import Command
from atelier_contracts.envelope import Envelope
from atelier_contracts.snapshot import JobSnapshot
from atelier_gateway.app.errors import REFUSALS, IllegalTransition, JobNotFound, Unavailable
from atelier_gateway.app.ports import CommandPublisher, JobReader

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
    projection_wait_s: float
    """How long to wait, after an accepted outcome, for the read model to show the change."""
    poll_s: float = 0.02


@dataclass(frozen=True)
class JobCommandResult:
    job: JobSnapshot | None
    """The job after the command (None once a deletion is projected)."""
    decided: bool
    """True when the orchestrator answered in time."""
    projected: bool
    """True when the read model already reflects the decision."""
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
    clock: Callable[[], datetime],
    timing: CommandTiming,
) -> JobCommandResult:
    before = await reader.job(cmd.tenant, cmd.job_id)
    if before is None:  # unknown or deleted: nothing to ask the orchestrator
        raise JobNotFound(f"No job {cmd.job_id!r}.")
    seq_before = await reader.last_seq(cmd.tenant, cmd.job_id) or 0
    envelope = command_envelope(cmd.tenant, cmd.job_id, cmd.request_id, cmd.body, clock(), cmd.msg_id)
    outcome = await publisher.request(envelope, timing.reply_wait_s)
    extra = {"job_id": cmd.job_id, "request_id": cmd.request_id, "command": type(cmd.body).__name__}
    if outcome is None:
        log.info("no outcome in time; the command is stored and will be decided", extra=extra)
        return JobCommandResult(job=await _current(reader, cmd, before), decided=False, projected=False)
    if not outcome.accepted:
        log.info("command refused: %s", outcome.code, extra=extra)
        raise REFUSALS.get(outcome.code, IllegalTransition)(outcome.message or None)
    events = tuple(outcome.events)
    projected = not events or await _wait_past(reader, cmd, seq_before, timing)
    return JobCommandResult(
        job=await _current(reader, cmd, before), decided=True, projected=projected, events=events
    )


async def _wait_past(reader: JobReader, cmd: JobCommandInput, seq: int, timing: CommandTiming) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timing.projection_wait_s
    while True:
        try:
            now_seq = await reader.last_seq(cmd.tenant, cmd.job_id)
        except Unavailable:
            return False
        if now_seq is not None and now_seq > seq:
            return True
        if loop.time() + timing.poll_s > deadline:
            return False
        await asyncio.sleep(timing.poll_s)


async def _current(reader: JobReader, cmd: JobCommandInput, before: JobSnapshot) -> JobSnapshot | None:
    try:
        return await reader.job(cmd.tenant, cmd.job_id)
    except Unavailable:
        # The command is stored: answering 503 now would invite the client to send it again.
        return before
