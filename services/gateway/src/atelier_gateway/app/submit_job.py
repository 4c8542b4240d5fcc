"""Submit a job: publish a ``SubmitJob`` command, then briefly wait for the orchestrator's projection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atelier_contracts import ids
from atelier_contracts.commands import JOB_KINDS, TASK_CAPABILITIES, Command, SubmitJob
from atelier_contracts.envelope import Envelope
from atelier_contracts.snapshot import JobSnapshot, JobStatus
from atelier_gateway.app.errors import IdempotencyKeyReused, JobDeleted, Unavailable, UnknownJobKind
from atelier_gateway.app.ports import CommandPublisher, JobReader
from atelier_gateway.app.send_command import command_envelope

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
    idempotency_key: str | None = None
    request_hash: str = ""
    """With a key: the job id is derived from (tenant, key), so one key makes one job, ever."""


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
    if cmd.kind == "task" and cmd.input.get("capability") not in TASK_CAPABILITIES:
        raise UnknownJobKind(
            f"A task needs input.capability, one of: {', '.join(sorted(TASK_CAPABILITIES))}."
        )
    job_id = (
        ids.derived_id("job", cmd.tenant, cmd.idempotency_key) if cmd.idempotency_key else ids.new_job_id()
    )
    if cmd.idempotency_key:
        existing = await _existing(reader, cmd, job_id)
        if existing is not None:
            return SubmitJobResult(job=existing, projected=True)
    body = SubmitJob(
        kind=cmd.kind,
        title=cmd.title,
        input=cmd.input,
        priority=cmd.priority,
        tags=list(cmd.tags),
        request_hash=cmd.request_hash,
    )
    envelope = command_envelope(cmd.tenant, job_id, cmd.request_id, body, clock())
    await publisher.publish(envelope)
    log.info("job submitted", extra={"job_id": job_id, "kind": cmd.kind, "request_id": cmd.request_id})
    projected = await _wait_for_projection(reader, cmd.tenant, job_id, wait_s, poll_s)
    if projected is not None:
        return SubmitJobResult(job=projected, projected=True)
    return SubmitJobResult(job=_pending(envelope, body), projected=False)


async def _existing(reader: JobReader, cmd: SubmitJobInput, job_id: str) -> JobSnapshot | None:
    """The job this key made before (its idempotency record may have expired since)."""
    job = await reader.job(cmd.tenant, job_id)
    if job is None:
        if await reader.last_seq(cmd.tenant, job_id) is not None:
            raise JobDeleted(f"The job {job_id!r} this Idempotency-Key created was deleted.")
        return None
    if job.request_hash and job.request_hash != cmd.request_hash:
        raise IdempotencyKeyReused()
    return job


MAX_POLL_S = 0.25


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
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(poll_s, remaining))
        # Quick at first (a projection usually lands within milliseconds), then backing off, so
        # a burst of submissions does not turn into a storm of read-model queries.
        poll_s = min(poll_s * 2, MAX_POLL_S)


def _pending(envelope: Envelope[Command], body: SubmitJob) -> JobSnapshot:
    """What the job will look like once the orchestrator takes the command."""
    return JobSnapshot(
        id=envelope.job_id,
        tenant=envelope.tenant,
        kind=body.kind,
        title=body.title,
        input=body.input,
        priority=body.priority,
        tags=body.tags,
        request_hash=body.request_hash,
        status=JobStatus.QUEUED,
        steps={},
        created_at=envelope.sent_at,
        updated_at=envelope.sent_at,
    )
