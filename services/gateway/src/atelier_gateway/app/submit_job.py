"""Submit a job: publish a ``SubmitJob`` command, then briefly wait for the orchestrator's projection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atelier_contracts import ids
from atelier_contracts.commands import JOB_KINDS, Command, SubmitJob
from atelier_contracts.envelope import Envelope
from atelier_contracts.snapshot import JobSnapshot, JobStatus
from atelier_gateway.app.errors import Unavailable, UnknownJobKind
from atelier_gateway.app.ports import CommandPublisher, JobReader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitJobInput:
    tenant: str
    request_id: str
    kind: str
    title: str
    input: dict[str, Any]
    priority: int = 0
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubmitJobResult:
    job: JobSnapshot
    projected: bool
    """True when the read model already had the job; else ``job`` is built from the command."""


async def submit_job(
    cmd: SubmitJobInput,
    *,
    publisher: CommandPublisher,
    reader: JobReader,
    clock: Callable[[], datetime],
    wait_s: float,
    poll_s: float = 0.02,
) -> SubmitJobResult:
    if cmd.kind not in JOB_KINDS:
        raise UnknownJobKind(f"Unknown job kind {cmd.kind!r}; known kinds: {', '.join(sorted(JOB_KINDS))}.")
    job_id = ids.new_job_id()
    envelope = Envelope[Command](
        msg_id=ids.new_message_id(),
        job_id=job_id,
        tenant=cmd.tenant,
        correlation_id=cmd.request_id,
        causation_id=None,
        sent_at=clock(),
        body=SubmitJob(
            kind=cmd.kind, title=cmd.title, input=cmd.input, priority=cmd.priority, tags=list(cmd.tags)
        ),
    )
    await publisher.publish(envelope)
    log.info("job submitted", extra={"job_id": job_id, "kind": cmd.kind, "request_id": cmd.request_id})
    projected = await _wait_for_projection(reader, cmd.tenant, job_id, wait_s, poll_s)
    if projected is not None:
        return SubmitJobResult(job=projected, projected=True)
    return SubmitJobResult(job=_pending(envelope), projected=False)


async def _wait_for_projection(
    reader: JobReader, tenant: str, job_id: str, wait_s: float, poll_s: float
) -> JobSnapshot | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            job = await reader.job(tenant, job_id)
        except Unavailable:
            # The command is already stored; failing now would invite a duplicate submission.
            log.warning("read model unavailable while waiting for a new job", extra={"job_id": job_id})
            return None
        if job is not None:
            return job
        if loop.time() + poll_s > deadline:
            return None
        await asyncio.sleep(poll_s)


def _pending(envelope: Envelope[Command]) -> JobSnapshot:
    """What the job will look like once the orchestrator takes the command."""
    body = envelope.body
    return JobSnapshot(
        id=envelope.job_id,
        tenant=envelope.tenant,
        kind=body.kind,
        title=body.title,
        input=body.input,
        priority=body.priority,
        tags=body.tags,
        status=JobStatus.QUEUED,
        steps={},
        created_at=envelope.sent_at,
        updated_at=envelope.sent_at,
    )
