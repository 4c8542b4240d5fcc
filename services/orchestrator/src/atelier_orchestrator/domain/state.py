"""``evolve``: the pure fold of a job's events into its snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from msgspec.structs import replace

from atelier_contracts.events import (
    Commit,
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
from atelier_contracts.snapshot import JobSnapshot, JobStatus, StepSnapshot, StepStatus


@dataclass(frozen=True)
class EventMeta:
    """What an event's commit says about it: whose it is and when it happened."""

    job_id: str
    tenant: str
    at: datetime


def evolve(state: JobSnapshot | None, event: JobEvent, meta: EventMeta) -> JobSnapshot:
    """The snapshot after ``event``. Total: every event type is handled."""
    if isinstance(event, JobSubmitted):
        return JobSnapshot(
            id=meta.job_id,
            tenant=meta.tenant,
            kind=event.kind,
            title=event.title,
            input=event.input,
            priority=event.priority,
            tags=event.tags,
            status=JobStatus.QUEUED,
            steps={
                s.name: StepSnapshot(
                    name=s.name,
                    capability=s.capability,
                    needs=s.needs,
                    params=s.params,
                    max_attempts=s.max_attempts,
                )
                for s in event.steps
            },
            created_at=meta.at,
            updated_at=meta.at,
            partial_ready_after=event.partial_ready_after,
            attempts=1,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before JobSubmitted in job {meta.job_id}")
    state = replace(state, updated_at=meta.at)
    match event:
        case StepDispatched():
            return _step(
                state,
                event.step,
                status=StepStatus.DISPATCHED,
                attempts=event.attempt,
                work_id=event.work_id,
                started_at=None,
                finished_at=None,
                updated_at=meta.at,
            )
        case StepStarted():
            return _step(
                state, event.step, status=StepStatus.RUNNING, started_at=event.started_at, updated_at=meta.at
            )
        case StepSucceeded():
            return _step(
                state,
                event.step,
                status=StepStatus.SUCCEEDED,
                outputs=event.outputs,
                provider=event.provider,
                model=event.model,
                usage=event.usage,
                started_at=event.started_at,
                finished_at=event.finished_at,
                updated_at=meta.at,
            )
        case StepFailed():
            state = replace(state, last_error=event.error)
            return _step(
                state,
                event.step,
                status=StepStatus.FAILED,
                last_error=event.error,
                finished_at=event.error.at,
                updated_at=meta.at,
            )
        case JobStarted():
            return replace(state, status=JobStatus.RUNNING)
        case JobPartialReady():
            return replace(state, status=JobStatus.PARTIAL_READY)
        case JobSucceeded():
            return replace(state, status=JobStatus.SUCCEEDED, finished_at=meta.at)
        case JobFailed():
            return replace(state, status=JobStatus.FAILED, last_error=event.error, finished_at=meta.at)
    raise TypeError(f"unknown event {event!r}")  # pragma: no cover - the union is exhaustive


def _step(state: JobSnapshot, name: str, **changes: object) -> JobSnapshot:
    steps = dict(state.steps)
    steps[name] = replace(steps[name], **changes)
    return replace(state, steps=steps)


def apply_commit(state: JobSnapshot | None, commit: Commit, seq: int) -> JobSnapshot:
    """Fold a whole commit; the snapshot's ``version`` becomes the commit's stream sequence."""
    meta = EventMeta(job_id=commit.job_id, tenant=commit.tenant, at=commit.at)
    for record in commit.events:
        state = evolve(state, record.event, meta)
    if state is None:
        raise ValueError(f"empty first commit for job {commit.job_id}")
    return replace(state, version=seq)
