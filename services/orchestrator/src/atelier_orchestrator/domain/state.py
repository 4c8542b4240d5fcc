"""``evolve``: the pure fold of a job's events into its snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from msgspec.structs import replace

from atelier_contracts.common import ReviewRecord
from atelier_contracts.events import (
    BudgetAlerted,
    Commit,
    JobCancelled,
    JobDeleted,
    JobEvent,
    JobFailed,
    JobPartialReady,
    JobRequeued,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    JobUpdated,
    ProviderCalled,
    ReportIgnored,
    ReviewRequested,
    StepCancelled,
    StepDispatched,
    StepFailed,
    StepRedelivered,
    StepRetryRequested,
    StepRetryScheduled,
    StepReviewed,
    StepSkipped,
    StepSpec,
    StepsPlanned,
    StepStarted,
    StepSucceeded,
)
from atelier_contracts.snapshot import JobStatus, StepStatus
from atelier_orchestrator.domain.snapshot import JobSnapshot, StepSnapshot

RECENT_CAUSES = 64
"""How many commits back a redelivered command is still recognised (redeliveries come within seconds)."""


@dataclass(frozen=True)
class EventMeta:
    """What an event's commit says about it: whose it is and when it happened."""

    job_id: str
    tenant: str
    at: datetime


def evolve(state: JobSnapshot | None, event: JobEvent, meta: EventMeta) -> JobSnapshot:
    """The snapshot after ``event``. Total: every event type is handled."""
    if isinstance(event, JobSubmitted):
        return _submitted(event, meta)
    if state is None:
        raise ValueError(f"{type(event).__name__} before JobSubmitted in job {meta.job_id}")
    state = replace(state, updated_at=meta.at)
    at = meta.at
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
                updated_at=at,
                not_before=event.not_before,
                deadline_at=event.deadline_at,
                deliveries=1,
            )
        case StepStarted():
            return _step(
                state,
                event.step,
                status=StepStatus.RUNNING,
                started_at=event.started_at,
                worker=event.worker,
                updated_at=at,
            )
        case StepRedelivered():
            return _step(state, event.step, deliveries=event.delivery, worker=event.worker, updated_at=at)
        case StepSucceeded():
            return _step(
                state,
                event.step,
                status=StepStatus.SUCCEEDED,
                outputs=event.outputs,
                provider=event.provider,
                model=event.model,
                usage=event.usage,
                fallbacks=event.fallbacks,
                started_at=event.started_at,
                finished_at=event.finished_at,
                updated_at=at,
                not_before=None,
                deadline_at=None,
            )
        case StepFailed():
            state = replace(state, last_error=event.error)
            return _step(
                state,
                event.step,
                status=StepStatus.FAILED,
                last_error=event.error,
                finished_at=event.error.at,
                updated_at=at,
                deadline_at=None,
            )
        case ProviderCalled() | BudgetAlerted():
            # The call's facts live in the log (and the usage read model); the step only notes
            # which attempt's calls are recorded.
            return _step(state, event.step, calls_recorded=event.attempt)
        case StepRetryScheduled() if event.waiting:
            # A wait for providers is not a try: the next attempt number does not use one up.
            step = state.steps[event.step]
            return _step(state, event.step, attempt_base=step.attempt_base + 1, waits=step.waits + 1)
        case StepRetryScheduled():
            # The StepDispatched that follows carries the new attempt; a real try ends a wait.
            return _step(state, event.step, waits=0)
        case StepCancelled():
            return _step(state, event.step, status=StepStatus.CANCELLED, updated_at=at, deadline_at=None)
        case StepSkipped():
            return _step(state, event.step, status=StepStatus.SKIPPED, updated_at=at, deadline_at=None)
        case StepRetryRequested():
            state = _reset(state, event.reset)
            deadline = event.deadline_at or state.deadline_at
            return replace(state, status=_live_status(state), finished_at=None, deadline_at=deadline)
        case ReportIgnored():
            return replace(state, ignored_work=[*state.ignored_work, event.work_id])
        case JobStarted():
            return replace(state, status=JobStatus.RUNNING)
        case JobPartialReady():
            return replace(state, status=JobStatus.PARTIAL_READY)
        case JobSucceeded():
            return replace(state, status=JobStatus.SUCCEEDED, finished_at=at)
        case JobFailed():
            return replace(state, status=JobStatus.FAILED, last_error=event.error, finished_at=at)
        case JobCancelled():
            return replace(state, status=JobStatus.CANCELLED, finished_at=at)
        case JobRequeued():
            state = _reset(state, event.reset)
            return replace(
                state,
                status=JobStatus.QUEUED,
                attempts=event.attempt,
                finished_at=None,
                deadline_at=event.deadline_at,
                last_error=None,
                review_waiting_since=None,
            )
        case JobUpdated():
            return replace(
                state,
                title=state.title if event.title is None else event.title,
                priority=state.priority if event.priority is None else event.priority,
                tags=state.tags if event.tags is None else event.tags,
            )
        case JobDeleted():
            return replace(state, deleted=True)
        case StepsPlanned():
            return _planned(state, event)
        case ReviewRequested():
            state = _step(
                state,
                event.step,
                status=StepStatus.AWAITING_REVIEW,
                review_round=event.round,
                deadline_at=event.deadline_at,
            )
            since = state.review_waiting_since or at
            return replace(state, status=JobStatus.AWAITING_REVIEW, review_waiting_since=since)
        case StepReviewed():
            return _reviewed(state, event, at)
    raise TypeError(f"unknown event {event!r}")  # pragma: no cover - the union is exhaustive


def _submitted(event: JobSubmitted, meta: EventMeta) -> JobSnapshot:
    return JobSnapshot(
        id=meta.job_id,
        tenant=meta.tenant,
        kind=event.kind,
        title=event.title,
        input=event.input,
        priority=event.priority,
        tags=event.tags,
        status=JobStatus.QUEUED,
        steps={s.name: _step_of(s) for s in event.steps},
        created_at=meta.at,
        updated_at=meta.at,
        partial_ready_after=event.partial_ready_after,
        attempts=1,
        deadline_at=event.deadline_at,
        request_hash=event.request_hash,
        origin=event.origin,
    )


def _step_of(spec: StepSpec) -> StepSnapshot:
    return StepSnapshot(
        name=spec.name,
        capability=spec.capability,
        needs=spec.needs,
        params=spec.params,
        max_attempts=spec.max_attempts,
        backoff_s=spec.backoff_s,
        backoff_max_s=spec.backoff_max_s,
        timeout_s=spec.timeout_s,
        planner=spec.planner,
        review=spec.review,
        given=spec.given,
    )


def _planned(state: JobSnapshot, event: StepsPlanned) -> JobSnapshot:
    """Add the planned steps before the first step that now needs them, so steps stay in an order
    where a step comes after what it needs; extend those steps' needs. A step the same planner
    planned before takes its new spec while it waits to run (one that ran stays as it is: a plan
    made again after a crash is the same plan); steps ``drop`` names go."""
    dropped = set(event.drop)
    if dropped:
        state = replace(
            state,
            steps={
                name: replace(step, needs=tuple(n for n in step.needs if n not in dropped))
                for name, step in state.steps.items()
                if name not in dropped
            },
        )
    new: dict[str, StepSnapshot] = {}
    renewed: dict[str, StepSnapshot] = {}
    for spec in event.steps:
        old = state.steps.get(spec.name)
        if old is None:
            new[spec.name] = replace(_step_of(spec), planned_by=event.by)
        elif old.status == StepStatus.PENDING and old.planned_by == event.by:
            renewed[spec.name] = replace(
                old, params=spec.params, needs=spec.needs, capability=spec.capability, review=spec.review
            )
    gaining = {
        name: [n for n in more if n not in state.steps[name].needs]
        for name, more in event.needs.items()
        if name in state.steps
    }
    steps: dict[str, StepSnapshot] = {}
    for name, step in state.steps.items():
        if new and name in gaining:
            steps.update(new)
            new = {}
        step = renewed.get(name, step)
        more = gaining.get(name)
        steps[name] = replace(step, needs=(*step.needs, *dict.fromkeys(more))) if more else step
    steps.update(new)
    return replace(state, steps=steps)


def _reviewed(state: JobSnapshot, event: StepReviewed, at: datetime) -> JobSnapshot:
    record = ReviewRecord(
        step=event.step,
        round=event.round,
        verdict="approve" if event.verdict == "approve" else "reject",
        feedback=event.feedback,
        reviewer=event.reviewer,
        auto=event.auto,
        at=at,
    )
    state = _step(replace(state, reviews=[*state.reviews, record]), event.step, review_round=event.round)
    gate = state.steps[event.step]
    if event.verdict == "approve" and event.final:
        state = _step(state, gate.name, status=StepStatus.SUCCEEDED, finished_at=at, deadline_at=None)
    elif event.verdict == "approve":  # the automatic half of a ``both`` gate: a person is next
        state = _step(state, gate.name, status=StepStatus.PENDING, review_auto_passed=True, deadline_at=None)
    elif not event.reset:  # the gate fails next (rounds exhausted, or its timeout's policy)
        state = _step(state, gate.name, status=StepStatus.PENDING, deadline_at=None)
    else:
        state = _reset(state, event.reset)
        steps = dict(state.steps)
        for name in event.reset:
            feedback = event.feedback if name != gate.name else ""
            steps[name] = replace(steps[name], feedback=feedback, review_auto_passed=False)
        state = replace(state, steps=steps)
    if state.review_waiting_since is not None and not any(
        s.status == StepStatus.AWAITING_REVIEW for s in state.steps.values()
    ):
        # Nobody is waited for now: the job's deadline moves on by the time the person took.
        waited = at - state.review_waiting_since
        deadline = state.deadline_at + waited if state.deadline_at else None
        state = replace(state, review_waiting_since=None, deadline_at=deadline, status=_live_status(state))
    return state


def _step(state: JobSnapshot, name: str, **changes: object) -> JobSnapshot:
    steps = dict(state.steps)
    steps[name] = replace(steps[name], **changes)
    return replace(state, steps=steps)


def _reset(state: JobSnapshot, names: list[str]) -> JobSnapshot:
    """Steps back to pending for a new run; their attempt numbers go on (work ids stay unique)."""
    steps = dict(state.steps)
    for name in names:
        s = steps[name]
        steps[name] = replace(
            s,
            status=StepStatus.PENDING,
            attempt_base=s.attempts,
            waits=0,
            work_id=None,
            outputs=[],
            provider=None,
            model=None,
            usage=None,
            started_at=None,
            finished_at=None,
            not_before=None,
            deadline_at=None,
            deliveries=1,
        )
    return replace(state, steps=steps)


def _live_status(state: JobSnapshot) -> str:
    primary = state.steps.get(state.partial_ready_after or "")
    if primary is not None and primary.status == StepStatus.SUCCEEDED:
        return JobStatus.PARTIAL_READY
    started = any(s.status != StepStatus.PENDING for s in state.steps.values())
    return JobStatus.RUNNING if started else JobStatus.QUEUED


def apply_commit(state: JobSnapshot | None, commit: Commit, seq: int) -> JobSnapshot:
    """Fold a whole commit; the snapshot's ``version`` becomes the commit's stream sequence."""
    meta = EventMeta(job_id=commit.job_id, tenant=commit.tenant, at=commit.at)
    for record in commit.events:
        state = evolve(state, record.event, meta)
    if state is None:
        raise ValueError(f"empty first commit for job {commit.job_id}")
    causes = [*state.recent_causes, commit.causation_id][-RECENT_CAUSES:]
    return replace(state, version=seq, recent_causes=causes)
