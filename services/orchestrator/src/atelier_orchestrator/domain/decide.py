"""``decide``: what a command or a work report means for a job, as a list of new events.

Pure: time and ids come in with :class:`Context`. A message that changes nothing (a duplicate,
a late report of an attempt already settled) decides no events, which makes every handler of
the orchestrator idempotent under redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atelier_contracts.commands import Command, SubmitJob
from atelier_contracts.common import Artifact, ErrorInfo
from atelier_contracts.events import (
    JobEvent,
    JobFailed,
    JobPartialReady,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    StepDispatched,
    StepFailed,
    StepStarted,
    StepSucceeded,
)
from atelier_contracts.ids import work_id
from atelier_contracts.snapshot import JobSnapshot, JobStatus, StepSnapshot, StepStatus
from atelier_contracts.work import WorkFailed, WorkReport, WorkStarted, WorkSucceeded
from atelier_orchestrator.domain.pipelines import PIPELINES
from atelier_orchestrator.domain.state import EventMeta, evolve


@dataclass(frozen=True)
class Context:
    job_id: str
    tenant: str
    now: datetime


@dataclass
class _Decision:
    """Events decided so far and the state they lead to, so later rules see earlier ones."""

    ctx: Context
    state: JobSnapshot | None
    events: list[JobEvent] = field(default_factory=list)

    def emit(self, event: JobEvent) -> None:
        self.events.append(event)
        meta = EventMeta(job_id=self.ctx.job_id, tenant=self.ctx.tenant, at=self.ctx.now)
        self.state = evolve(self.state, event, meta)

    @property
    def job(self) -> JobSnapshot:
        assert self.state is not None
        return self.state


def decide(state: JobSnapshot | None, message: Command | WorkReport, ctx: Context) -> list[JobEvent]:
    d = _Decision(ctx, state)
    match message:
        case SubmitJob():
            _submit(d, message)
        case WorkStarted() | WorkSucceeded() | WorkFailed():
            if state is not None and state.status not in JobStatus.TERMINAL:
                _report(d, message)
    return d.events


def _submit(d: _Decision, cmd: SubmitJob) -> None:
    if d.state is not None:
        return  # the job exists: a redelivered or repeated submit changes nothing
    pipeline = PIPELINES.get(cmd.kind)
    d.emit(
        JobSubmitted(
            kind=cmd.kind,
            title=cmd.title,
            input=cmd.input,
            priority=cmd.priority,
            tags=cmd.tags,
            steps=list(pipeline.steps) if pipeline else [],
            partial_ready_after=pipeline.partial_ready_after if pipeline else None,
        )
    )
    if pipeline is None:
        d.emit(JobFailed(error=ErrorInfo(code="unknown_job_kind", message=cmd.kind, at=d.ctx.now)))
        return
    _dispatch_ready_steps(d)


def _report(d: _Decision, report: WorkReport) -> None:
    step = d.job.steps.get(report.step)
    if step is None or step.work_id != report.work_id:
        return  # not the attempt we are waiting for: stale or unknown
    match report:
        case WorkStarted():
            if step.status == StepStatus.DISPATCHED:
                _mark_job_started(d)
                d.emit(
                    StepStarted(
                        step=step.name,
                        attempt=report.attempt,
                        work_id=report.work_id,
                        started_at=report.started_at,
                        worker=report.worker,
                    )
                )
        case WorkSucceeded():
            if step.status in (StepStatus.DISPATCHED, StepStatus.RUNNING):
                _mark_job_started(d)
                d.emit(
                    StepSucceeded(
                        step=step.name,
                        attempt=report.attempt,
                        work_id=report.work_id,
                        outputs=report.outputs,
                        provider=report.provider,
                        model=report.model,
                        usage=report.usage,
                        started_at=report.started_at,
                        finished_at=report.finished_at,
                    )
                )
                _advance(d, step.name)
        case WorkFailed():
            if step.status in (StepStatus.DISPATCHED, StepStatus.RUNNING):
                _fail_step(d, step, report)


def _mark_job_started(d: _Decision) -> None:
    if d.job.status == JobStatus.QUEUED:
        d.emit(JobStarted())


def _advance(d: _Decision, finished: str) -> None:
    steps = d.job.steps.values()
    if all(s.status == StepStatus.SUCCEEDED for s in steps):
        d.emit(JobSucceeded())
        return
    if finished == d.job.partial_ready_after and d.job.status == JobStatus.RUNNING:
        d.emit(JobPartialReady(ready_steps=[finished]))
    _dispatch_ready_steps(d)


def _fail_step(d: _Decision, step: StepSnapshot, report: WorkFailed) -> None:
    error = ErrorInfo(
        code=report.code, message=report.message, at=report.finished_at, retryable=report.retryable
    )
    will_retry = report.retryable and step.attempts < step.max_attempts
    d.emit(
        StepFailed(
            step=step.name,
            attempt=step.attempts,
            work_id=step.work_id or "",
            error=error,
            will_retry=will_retry,
        )
    )
    if will_retry:
        _dispatch(d, d.job.steps[step.name], step.attempts + 1)
        return
    d.emit(
        JobFailed(
            error=ErrorInfo(
                code="step_failed",
                message=(
                    f"step {step.name} failed after {step.attempts} attempt(s): "
                    f"{report.code}: {report.message}"
                ),
                at=d.ctx.now,
            )
        )
    )


def _dispatch_ready_steps(d: _Decision) -> None:
    steps = d.job.steps
    for step in list(steps.values()):
        ready = all(steps[n].status == StepStatus.SUCCEEDED for n in step.needs)
        if step.status == StepStatus.PENDING and ready:
            _dispatch(d, step, 1)


def _dispatch(d: _Decision, step: StepSnapshot, attempt: int) -> None:
    job = d.job
    inputs: dict[str, Artifact] = {
        f"{need}.{artifact.name}": artifact for need in step.needs for artifact in job.steps[need].outputs
    }
    params: dict[str, Any] = {"title": job.title, "input": job.input, "kind": job.kind, **step.params}
    d.emit(
        StepDispatched(
            step=step.name,
            attempt=attempt,
            work_id=work_id(job.id, step.name, attempt),
            capability=step.capability,
            params=params,
            inputs=inputs,
        )
    )
