"""Submit a job: store a ``SubmitJob`` command; answer with the job as submitted, or as decided."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atelier_contracts import ids
from atelier_contracts.capabilities import check_params
from atelier_contracts.commands import Command, SubmitJob
from atelier_contracts.envelope import Envelope
from atelier_contracts.events import StepSpec
from atelier_contracts.faults import FaultInjection
from atelier_contracts.kinds import KINDS, InvalidInput, Issue, JobKind
from atelier_contracts.presets import PresetRegistry
from atelier_contracts.snapshot import JobStatus, JobView
from atelier_gateway.app.errors import (
    REFUSALS,
    IdempotencyKeyReused,
    IllegalTransition,
    InputInvalid,
    JobDeleted,
    PresetNotFound,
    SimulateDisabled,
    UnknownCapability,
    UnknownJobKind,
    UploadNotFound,
)
from atelier_gateway.app.ports import CommandPublisher, JobLog, JobReader, UploadStore
from atelier_gateway.app.read_job import read_job
from atelier_gateway.app.send_command import command_envelope
from atelier_gateway.app.uploads import attach_uploads

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
    job: JobView
    """The job as decided, or (not decided yet) as the command describes it."""


def job_id_for(tenant: str, idempotency_key: str | None) -> str:
    return ids.derived_id("job", tenant, idempotency_key) if idempotency_key else ids.new_job_id()


async def submit_job(
    cmd: SubmitJobInput,
    *,
    publisher: CommandPublisher,
    reader: JobReader,
    joblog: JobLog,
    clock: Callable[[], datetime],
    wait_s: float,
    read_wait_s: float,
    faults: FaultInjection,
    uploads: UploadStore,
    presets: PresetRegistry,
) -> SubmitJobResult:
    job_input = await prepared_input(cmd.tenant, cmd.kind, cmd.input, faults, uploads, presets)
    job_id = job_id_for(cmd.tenant, cmd.idempotency_key)
    if cmd.idempotency_key:
        existing = await existing_job(cmd.tenant, job_id, cmd.request_hash, reader, joblog, read_wait_s)
        if existing is not None:
            return SubmitJobResult(job=existing)
    body = SubmitJob(
        kind=cmd.kind,
        title=cmd.title,
        input=job_input,
        priority=cmd.priority,
        tags=list(cmd.tags),
        request_hash=cmd.request_hash,
    )
    envelope = command_envelope(cmd.tenant, job_id, cmd.request_id, body, clock())
    if wait_s <= 0:  # stored is accepted: reads of the job wait for it (read_job)
        await publisher.publish(envelope)
        return SubmitJobResult(job=_pending(envelope, body))
    outcome = await publisher.request(envelope, wait_s)
    log.debug("job submitted", extra={"job_id": job_id, "kind": cmd.kind, "request_id": cmd.request_id})
    if outcome is None:
        return SubmitJobResult(job=_pending(envelope, body))
    if not outcome.accepted:
        raise REFUSALS.get(outcome.code, IllegalTransition)(outcome.message or None)
    return SubmitJobResult(job=outcome.job or _pending(envelope, body))


async def prepared_input(
    tenant: str,
    kind_name: str,
    raw: Mapping[str, Any],
    faults: FaultInjection,
    uploads: UploadStore,
    presets: PresetRegistry,
) -> dict[str, Any]:
    """A job's input as it is recorded, from whatever sent it (a submit, a session's round): what
    the gateway fills in (``JobKind.resolve``), the uploads it names resolved, and checked against
    its kind, its steps' capabilities and the export presets."""
    kind = kind_named(kind_name)
    resolved = kind.resolve(raw) if kind.resolve is not None else raw
    job_input = await attach_uploads(tenant, kind, resolved, uploads)
    check_presets(check_input(kind_name, job_input, faults, uploads_resolved=True), presets)
    return job_input


def kind_named(name: str, loc: Sequence[str] = ("body", "kind")) -> JobKind[Any]:
    """The kind of that name, or ``unknown_job_kind`` naming where the name was given."""
    kind = KINDS.get(name)
    if kind is None:
        known = ", ".join(sorted(KINDS))
        raise UnknownJobKind(
            f"Unknown job kind {name!r}; known kinds: {known}.",
            errors=[{"loc": list(loc), "msg": f"one of {known}", "type": "enum"}],
        )
    return kind


def check_presets(steps: Sequence[StepSpec], presets: PresetRegistry) -> None:
    """Every export preset the steps name is one the presets file defines (now). The file is
    looked at only for steps that name one: other submits do no file system work for it."""
    named = [s.params["preset"] for s in steps if s.capability == "image.variant" and "preset" in s.params]
    if not named:
        return
    known = presets.presets()
    for name in named:
        if name not in known:
            raise PresetNotFound(
                [{"loc": ["body", "input", "presets"], "msg": f"no preset {name!r}", "type": "enum"}],
                f"No export preset {name!r}; presets: {', '.join(sorted(known))} (GET /v1/presets).",
            )


def check_input(
    kind_name: str, job_input: dict[str, Any], faults: FaultInjection, *, uploads_resolved: bool = False
) -> tuple[StepSpec, ...]:
    """The input as the kind's schema takes it, and fault injection only where it is allowed;
    the steps it makes. ``attached`` is refused unless this gateway resolved it (a submit's
    ``attach_uploads``): a session's round or a schedule's template cannot name blobs."""
    kind = kind_named(kind_name)
    if "attached" in job_input and not uploads_resolved:
        forged = Issue(loc=("attached",), msg="set by the gateway, not by clients", type="forbidden")
        raise InputInvalid([_issue(forged)])
    nul = _nul_at(job_input)
    if nul is not None:
        raise InputInvalid(
            [_issue(Issue(loc=nul, msg="must not contain NUL characters", type="value_error"))]
        )
    try:
        parsed = kind.parse(job_input)
    except InvalidInput as exc:
        error = UnknownCapability if exc.code == "unknown_capability" else InputInvalid
        raise error([_issue(i) for i in exc.issues], str(exc) if len(exc.issues) == 1 else None) from None
    try:  # the steps the input makes, as their capabilities take them (a kind's own mistake)
        steps = kind.plan(parsed)
        check_params(steps)
    except InvalidInput as exc:
        if exc.code == "upload_not_found":  # named in an input that did not come through a submit
            raise UploadNotFound(str(exc)) from None
        issues: list[dict[str, object]] = [
            {"loc": list(i.loc), "msg": i.msg, "type": i.type} for i in exc.issues
        ]
        raise InputInvalid(issues, f"The input makes steps their capabilities refuse: {exc}") from None
    if getattr(parsed, "session", None) is not None:
        forged = Issue(
            loc=("session",), msg="set by a session for its rounds, not by clients", type="forbidden"
        )
        raise InputInvalid([_issue(forged)])
    simulate = getattr(parsed, "simulate", None)
    if simulate is None:
        return steps
    if not faults.enabled:
        raise SimulateDisabled()
    if simulate.slow_s > faults.max_delay_s:
        too_long = Issue(
            loc=("simulate", "slow_s"),
            msg=f"Expected `float` <= {faults.max_delay_s:g} (ATELIER_SIMULATE_MAX_DELAY_S)",
            type="out_of_range",
        )
        raise InputInvalid([_issue(too_long)])
    return steps


def _nul_at(value: object, loc: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where a NUL character is in a JSON value (PostgreSQL text cannot hold one), if anywhere."""
    if isinstance(value, str):
        return loc if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return (*loc, key)
        found = _nul_at(item, (*loc, key))
        if found is not None:
            return found
    return None


def _issue(issue: Issue) -> dict[str, object]:
    return {"loc": ["body", "input", *issue.loc], "msg": issue.msg, "type": issue.type}


async def existing_job(
    tenant: str, job_id: str, request_hash: str, reader: JobReader, joblog: JobLog, wait_s: float
) -> JobView | None:
    """The job this key made before (its idempotency record may have expired since)."""
    job = await read_job(tenant, job_id, reader=reader, joblog=joblog, wait_s=wait_s)
    if job is None:
        if await reader.last_seq(tenant, job_id) is not None:
            raise JobDeleted(f"The job {job_id!r} this Idempotency-Key created was deleted.")
        return None
    if job.request_hash and job.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return job


def _pending(envelope: Envelope[Command], body: SubmitJob) -> JobView:
    """What the job will look like once the orchestrator takes the command."""
    return JobView(
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
        attempts=1,  # its first run, as the orchestrator will record it
        created_at=envelope.sent_at,
        updated_at=envelope.sent_at,
    )
