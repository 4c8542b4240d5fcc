"""``decide``: what a command or a work report means for a job, as a list of new events.

Pure: time and ids come in with :class:`Context`. A message that changes nothing (a duplicate,
a repeated cancel) decides no events, which makes every handler idempotent under redelivery.
A command the job's state does not allow raises :class:`Rejected` with a stable error code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from atelier_contracts.capabilities import check_params
from atelier_contracts.commands import (
    CancelJob,
    Command,
    DeleteJob,
    ExpireDeadlines,
    RequeueJob,
    RetryStep,
    ReviewStep,
    SubmitJob,
    UpdateJob,
)
from atelier_contracts.common import Artifact, BudgetAlert, ErrorInfo, ProviderAttempt
from atelier_contracts.events import (
    BudgetAlerted,
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
from atelier_contracts.ids import work_id
from atelier_contracts.kinds import KINDS, InvalidInput, PlanInvalid
from atelier_contracts.snapshot import JobStatus, StepStatus
from atelier_contracts.work import WorkFailed, WorkReport, WorkStarted, WorkSucceeded
from atelier_orchestrator.domain.pipelines import NoPipeline, Pipeline, default_deadline_s, pipeline_for
from atelier_orchestrator.domain.policies import backoff_delay, is_retryable, step_deadline
from atelier_orchestrator.domain.snapshot import JobSnapshot, StepSnapshot
from atelier_orchestrator.domain.state import EventMeta, evolve

LIVE = (StepStatus.DISPATCHED, StepStatus.RUNNING)
UNSETTLED = (StepStatus.PENDING, *LIVE, StepStatus.AWAITING_REVIEW)
MIN_WAIT_S = 1.0
"""The shortest wait for providers: each wait is a commit in the job's log, so no busy loop."""
MAX_WAIT_S = 30.0


DEFAULT_MAX_FAN_OUT = 200


class Rejected(Exception):
    """The command is not allowed in the job's state; ``code`` is a stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Context:
    job_id: str
    tenant: str
    now: datetime
    msg_id: str = ""
    """The message being decided; a command already in the job's recent causes decides nothing."""
    max_fan_out: int = DEFAULT_MAX_FAN_OUT
    """The most items one step's result may plan steps for."""


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

    @property
    def now(self) -> datetime:
        return self.ctx.now


def decide(state: JobSnapshot | None, message: Command | WorkReport, ctx: Context) -> list[JobEvent]:
    d = _Decision(ctx, state)
    if isinstance(message, SubmitJob):
        _submit(d, message)
    elif isinstance(message, WorkStarted | WorkSucceeded | WorkFailed):
        if state is not None:
            _report(d, message)
    else:
        if state is None:
            raise Rejected("job_not_found", f"no job {ctx.job_id}")
        if ctx.msg_id and ctx.msg_id in state.recent_causes:
            # A redelivered command, decided and appended before (a delete too: its relay may
            # not have happened). A decision too large for one commit may have been cut short.
            _heal(d)
            return d.events
        if state.deleted:
            raise Rejected("job_not_found", f"no job {ctx.job_id}")
        _command(d, message)
    return d.events


def _heal(d: _Decision) -> None:
    """What a decision cut short by a crash between its commits left undone: steps ready but not
    dispatched, a job whose steps have all settled. Idempotent: nothing when nothing is left."""
    job = d.job
    if job.status in JobStatus.TERMINAL or job.deleted:
        return
    _dispatch_ready_steps(d)
    _settle(d)


# --- commands -----------------------------------------------------------------------------


def _submit(d: _Decision, cmd: SubmitJob) -> None:
    if d.state is not None:
        _heal(d)  # the job exists: a repeated submit finishes at most what a crash cut short
        return
    pipeline = pipeline_for(cmd.kind, cmd.input)
    planned = pipeline if isinstance(pipeline, Pipeline) else Pipeline(steps=())
    deadline_s = cmd.deadline_s or default_deadline_s(cmd.kind)
    d.emit(
        JobSubmitted(
            kind=cmd.kind,
            title=cmd.title,
            input=cmd.input,
            priority=cmd.priority,
            tags=cmd.tags,
            steps=list(planned.steps),
            partial_ready_after=planned.partial_ready_after,
            deadline_at=d.now + timedelta(seconds=deadline_s),
            request_hash=cmd.request_hash,
            origin=cmd.origin,
        )
    )
    if isinstance(pipeline, NoPipeline):
        d.emit(JobFailed(error=pipeline.error(d.now)))
        return
    _dispatch_ready_steps(d)


def _command(d: _Decision, cmd: Command) -> None:
    job = d.job
    match cmd:
        case CancelJob():
            if job.status == JobStatus.CANCELLED:
                return
            if job.status in JobStatus.TERMINAL:
                raise Rejected("illegal_transition", f"a {job.status} job cannot be cancelled")
            _cancel(d, cmd.reason or "cancelled by request")
        case RequeueJob():
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                raise Rejected(
                    "illegal_transition", f"only failed or cancelled jobs can be requeued, not {job.status}"
                )
            reset = [s.name for s in job.steps.values() if s.status != StepStatus.SUCCEEDED]
            deadline = d.now + timedelta(seconds=default_deadline_s(job.kind))
            d.emit(JobRequeued(attempt=job.attempts + 1, reset=reset, deadline_at=deadline))
            _dispatch_ready_steps(d)
        case RetryStep():
            _retry_step(d, cmd.step)
        case ReviewStep():
            gate = job.steps.get(cmd.step)
            if gate is None:
                raise Rejected("step_not_found", f"the job has no step {cmd.step!r}")
            if gate.review is None or gate.status != StepStatus.AWAITING_REVIEW:
                raise Rejected("illegal_transition", f"step {cmd.step} is not waiting for a review")
            _verdict(d, gate, cmd.verdict, cmd.feedback, cmd.reviewer or "someone", auto=False)
        case UpdateJob():
            changed = JobUpdated(
                title=cmd.title if cmd.title not in (None, job.title) else None,
                priority=cmd.priority if cmd.priority not in (None, job.priority) else None,
                tags=cmd.tags if cmd.tags is not None and cmd.tags != job.tags else None,
            )
            if changed != JobUpdated():
                d.emit(changed)
        case DeleteJob():
            if job.status not in JobStatus.TERMINAL:
                _cancel(d, "job deleted")
            d.emit(JobDeleted())
        case ExpireDeadlines():
            _expire(d)


def _cancel(d: _Decision, reason: str) -> None:
    for step in d.job.steps.values():
        if step.status in UNSETTLED:
            d.emit(StepCancelled(step=step.name, reason=reason))
    d.emit(JobCancelled(reason=reason))


def _retry_step(d: _Decision, name: str) -> None:
    step = d.job.steps.get(name)
    if step is None:
        raise Rejected("step_not_found", f"the job has no step {name!r}")
    if step.status in LIVE:
        raise Rejected("asset_already_running", f"step {name} is already being produced")
    if step.status == StepStatus.PENDING:
        raise Rejected("illegal_transition", f"step {name} has not run yet")
    blocked = [n for n in step.needs if d.job.steps[n].status != StepStatus.SUCCEEDED]
    if blocked:
        raise Rejected("illegal_transition", f"step {name} needs {', '.join(blocked)}; retry that first")
    reset = [name, *_dependents(d.job, name)]
    deadline = d.now + timedelta(seconds=default_deadline_s(d.job.kind))
    d.emit(StepRetryRequested(step=name, reset=reset, deadline_at=deadline))
    _dispatch_ready_steps(d)


def _expire(d: _Decision) -> None:
    job = d.job
    if job.status in JobStatus.TERMINAL:
        return
    for gate in list(job.steps.values()):
        if gate.status == StepStatus.AWAITING_REVIEW and gate.deadline_at and gate.deadline_at <= d.now:
            _review_timed_out(d, gate)
    job = d.job
    if job.status in JobStatus.TERMINAL:
        return
    paused = job.review_waiting_since is not None  # a person's review does not eat the deadline
    if not paused and job.deadline_at is not None and job.deadline_at <= d.now:
        for step in job.steps.values():
            if step.status in UNSETTLED:
                d.emit(StepCancelled(step=step.name, reason="job deadline exceeded"))
        error = ErrorInfo(code="job_deadline_exceeded", message="the job ran past its deadline", at=d.now)
        d.emit(JobFailed(error=error))
        return
    for step in list(job.steps.values()):
        if step.status in LIVE and step.deadline_at is not None and step.deadline_at <= d.now:
            message = f"no result within {step.timeout_s:g}s"
            _step_failed(d, step, "step_timeout", message, retryable=True, at=d.now)


# --- work reports -------------------------------------------------------------------------


def _report(d: _Decision, report: WorkReport) -> None:
    job = d.job
    step = job.steps.get(report.step)
    if step is None:
        return
    live_job = job.status not in JobStatus.TERMINAL and not job.deleted
    if live_job and step.work_id == report.work_id and step.status in LIVE:
        _current_report(d, step, report)
        return
    if not isinstance(report, WorkStarted) and _repeats(step, report):
        if live_job:
            _heal(d)
        return
    if isinstance(report, WorkStarted) or report.work_id in job.ignored_work:
        return
    if job.deleted:
        reason = "job deleted"
    elif not live_job:
        reason = f"job {job.status}"
    elif step.work_id != report.work_id:
        reason = "superseded by a later attempt"
    else:
        reason = f"step {step.status}"
    # The result is not used, but its provider calls happened (and may have been billed): they
    # go into the log all the same, so usage and analytics count every call.
    _record_calls(d, step, report.attempt, report.attempts, report.alerts)
    outcome = "succeeded" if isinstance(report, WorkSucceeded) else "failed"
    d.emit(
        ReportIgnored(
            work_id=report.work_id, step=step.name, attempt=report.attempt, outcome=outcome, reason=reason
        )
    )


def _repeats(step: StepSnapshot, report: WorkSucceeded | WorkFailed) -> bool:
    """A redelivered report of the result already recorded for this attempt."""
    if step.work_id != report.work_id:
        return False
    if isinstance(report, WorkSucceeded):
        return step.status == StepStatus.SUCCEEDED
    return step.status == StepStatus.FAILED


def _current_report(d: _Decision, step: StepSnapshot, report: WorkReport) -> None:
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
            elif step.status == StepStatus.RUNNING and report.worker != step.worker:
                # The item came back from JetStream to another worker: the first one vanished.
                d.emit(
                    StepRedelivered(
                        step=step.name,
                        attempt=report.attempt,
                        work_id=report.work_id,
                        delivery=report.delivery,
                        worker=report.worker,
                    )
                )
        case WorkSucceeded():
            _mark_job_started(d)
            _record_calls(d, step, report.attempt, report.attempts, report.alerts)
            if step.review is not None:  # the automatic reviewer of a gate answered
                _auto_verdict(d, step, report)
                return
            if step.planner is not None and not _plan(d, step, report):
                return
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
                    fallbacks=report.fallbacks,
                )
            )
            if step.name == d.job.partial_ready_after and d.job.status == JobStatus.RUNNING:
                d.emit(JobPartialReady(ready_steps=[step.name]))
            _dispatch_ready_steps(d)
            _settle(d)
        case WorkFailed():
            _mark_job_started(d)  # a quick attempt reports no start (see WorkPool)
            _record_calls(d, step, report.attempt, report.attempts, report.alerts)
            retryable = is_retryable(report.code, report.retryable)
            _step_failed(
                d,
                step,
                report.code,
                report.message,
                retryable=retryable,
                at=report.finished_at,
                retry_after_s=report.retry_after_s,
                waiting=_only_waited(report),
            )


def _plan(d: _Decision, step: StepSnapshot, report: WorkSucceeded) -> bool:
    """The steps the result plans, before the step succeeds (so nothing they feed starts early,
    and a plan cut short by a crash is completed when the report comes again); False when the
    result cannot be planned from (the step fails)."""
    kind = KINDS.get(d.job.kind)
    planner = kind.planners.get(step.planner or "") if kind is not None else None
    code, message, retryable = "plan_invalid", f"no planner {step.planner!r} in kind {d.job.kind!r}", False
    if kind is not None and planner is not None:
        try:
            plan = planner(kind.parse(d.job.input), report.data)
            try:  # what a model's answer planned must fit the capabilities as well as a submit
                check_params(plan.steps)
            except InvalidInput as exc:
                raise PlanInvalid(f"the planned steps' parameters: {exc}") from None
        except PlanInvalid as exc:  # a model may answer better next time
            message, retryable = f"the result of {step.name} cannot be planned from: {exc}", True
        except InvalidInput as exc:  # the job's own input: the same every time
            message = f"the job's input cannot be planned from: {exc}"
        else:
            if plan.width > d.ctx.max_fan_out:
                code, retryable = "plan_too_large", False
                message = f"{step.name} planned {plan.width} items; at most {d.ctx.max_fan_out} may be"
            else:
                steps = d.job.steps
                earlier = {n for n, s in steps.items() if s.planned_by == step.name}
                # New steps, and steps of an earlier plan of this step that are to run anew with
                # another spec; a plan made again after a crash finds its steps as they are.
                missing = [s for s in plan.steps if s.name not in steps or _respecified(steps[s.name], s)]
                drop = sorted(earlier - {s.name for s in plan.steps})
                if missing or drop:  # one event; the append cuts it to size (StepsPlanned.halves)
                    names = {s.name for s in missing}
                    needs = {k: kept for k, v in plan.needs.items() if (kept := [n for n in v if n in names])}
                    d.emit(StepsPlanned(by=step.name, steps=missing, needs=needs, drop=drop))
                return True
    _step_failed(d, step, code, message, retryable=retryable, at=report.finished_at)
    return False


def _respecified(step: StepSnapshot, spec: StepSpec) -> bool:
    """A step an earlier plan made, waiting to run, that the new plan specifies otherwise."""
    return step.status == StepStatus.PENDING and (step.params, step.needs) != (spec.params, spec.needs)


def _auto_verdict(d: _Decision, gate: StepSnapshot, report: WorkSucceeded) -> None:
    verdict = report.data.get("verdict")
    if verdict not in ("approve", "reject"):
        message = f"the automatic reviewer of {gate.name} gave no verdict (approve or reject)"
        _step_failed(d, gate, "review_invalid", message, retryable=True, at=report.finished_at)
        return
    feedback = str(report.data.get("feedback", ""))
    _verdict(d, gate, verdict, feedback, f"auto:{report.model}", auto=True)


def _verdict(
    d: _Decision, gate: StepSnapshot, verdict: str, feedback: str, reviewer: str, auto: bool
) -> None:
    """A verdict on ``gate`` (a person's, the automatic reviewer's, or its timeout's)."""
    assert gate.review is not None
    round_ = gate.review_round if gate.status == StepStatus.AWAITING_REVIEW else gate.review_round + 1

    def reviewed(verdict: str, final: bool = True, reset: list[str] | None = None) -> None:
        d.emit(StepReviewed(step=gate.name, round=round_, verdict=verdict, feedback=feedback,
                            reviewer=reviewer, auto=auto, final=final, reset=reset or []))  # fmt: skip

    if verdict == "approve":
        reviewed("approve", final=not (auto and gate.review.mode == "both"))
        _dispatch_ready_steps(d)  # what the gate held back, or (``both``) the person's review
        _settle(d)
        return
    if round_ >= gate.review.max_rounds:
        reviewed("reject")
        message = f"rejected in {round_} rounds, the most allowed: {feedback}"
        _step_failed(d, d.job.steps[gate.name], "review_rejected", message, retryable=False, at=d.now)
        return
    under_review = [n for n in gate.needs if n not in gate.review.keeps]
    reviewed(
        "reject",
        reset=list(dict.fromkeys(n for name in under_review for n in (name, *_dependents(d.job, name)))),
    )
    _dispatch_ready_steps(d)


def _review_timed_out(d: _Decision, gate: StepSnapshot) -> None:
    assert gate.review is not None
    policy = gate.review.on_timeout
    why = f"no review within {gate.review.timeout_s:g}s"
    if policy == "fail":
        d.emit(
            StepReviewed(
                step=gate.name, round=gate.review_round, verdict="reject", feedback=why, reviewer="timeout"
            )
        )
        _step_failed(d, d.job.steps[gate.name], "review_timeout", why, retryable=False, at=d.now)
        return
    _verdict(d, gate, policy, why, "timeout", auto=False)


def _only_waited(report: WorkFailed) -> bool:
    """A wait, not a try: every provider was cooling down or at its limits, so none was called;
    or the blob store was out before any provider was paid. An outage that outlasted the worker's
    patience with a provider's output in hand counts as a try: its calls were billed, and a wait
    without end would bill them again and again."""
    if report.code == "storage_unavailable":
        return not any(a.outcome == "succeeded" for a in report.attempts)
    return (
        report.code == "providers_unavailable"
        and bool(report.attempts)
        and all(a.outcome == "skipped" for a in report.attempts)
    )


def _record_calls(
    d: _Decision, step: StepSnapshot, attempt: int, calls: list[ProviderAttempt], alerts: list[BudgetAlert]
) -> None:
    if d.job.steps[step.name].calls_recorded == attempt:
        return  # a decision made again (a plan cut short by a crash): the calls are in the log
    for call in calls:
        d.emit(ProviderCalled(step=step.name, attempt=attempt, capability=step.capability, call=call))
    for alert in alerts:
        d.emit(BudgetAlerted(step=step.name, attempt=attempt, alert=alert))


def _mark_job_started(d: _Decision) -> None:
    if d.job.status == JobStatus.QUEUED:
        d.emit(JobStarted())


def _step_failed(
    d: _Decision,
    step: StepSnapshot,
    code: str,
    message: str,
    *,
    retryable: bool,
    at: datetime,
    retry_after_s: float | None = None,
    waiting: bool = False,
) -> None:
    """A failed attempt: retry it (after backoff, or when the providers will answer again) or give
    up. A ``waiting`` attempt made no call, so it does not count against ``max_attempts``; only
    the job's deadline ends the wait."""
    deadline = d.job.deadline_at
    if waiting:
        # As soon as a provider can answer, but backing off from 1 s to 30 s while waits go on,
        # so a long starvation (a saturated rpm limit) is a few commits a minute, not one a second.
        delay = max(retry_after_s or 0.0, min(MIN_WAIT_S * 2**step.waits, MAX_WAIT_S))
    else:
        delay = max(backoff_delay(step, step.work_id or ""), retry_after_s or 0.0)
    due = d.now + timedelta(seconds=delay)
    attempts_left = waiting or step.run_attempts < step.max_attempts
    will_retry = retryable and attempts_left and (deadline is None or due < deadline)
    error = ErrorInfo(code=code, message=message, at=at, retryable=retryable)
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
        delay = (due - d.now).total_seconds()
        d.emit(
            StepRetryScheduled(
                step=step.name, attempt=step.attempts + 1, due_at=due, delay_s=delay, waiting=waiting
            )
        )
        _dispatch(d, d.job.steps[step.name], step.attempts + 1, not_before=due)
        return
    for dependent in _dependents(d.job, step.name):
        if d.job.steps[dependent].status == StepStatus.PENDING:
            d.emit(StepSkipped(step=dependent, because=step.name))
    _settle(d)


def _settle(d: _Decision) -> None:
    """When no step is left to run, the job ends: succeeded if every step did, else failed."""
    steps = d.job.steps.values()
    if any(s.status in UNSETTLED for s in steps):
        return
    failed = [s for s in steps if s.status != StepStatus.SUCCEEDED]
    if not failed:
        d.emit(JobSucceeded())
        return
    first = next((s for s in failed if s.status == StepStatus.FAILED), failed[0])
    cause = f": {first.last_error.code}: {first.last_error.message}" if first.last_error else ""
    message = f"step {first.name} failed after {first.run_attempts} attempt(s){cause}"
    d.emit(JobFailed(error=ErrorInfo(code="step_failed", message=message, at=d.now)))


# --- dispatching ----------------------------------------------------------------------------


def _dependents(job: JobSnapshot, name: str) -> list[str]:
    """Every step that needs ``name``, directly or through others, in pipeline order."""
    found: set[str] = {name}
    for step in job.steps.values():  # steps are in pipeline (topological) order
        if any(n in found for n in step.needs):
            found.add(step.name)
    return [s for s in job.steps if s in found and s != name]


def _dispatch_ready_steps(d: _Decision) -> None:
    for name in list(d.job.steps):
        steps = d.job.steps  # as of the steps before: a given step succeeds as it is "dispatched"
        step = steps[name]
        ready = all(n in steps and steps[n].status == StepStatus.SUCCEEDED for n in step.needs)
        if step.status == StepStatus.PENDING and ready:
            review = step.review
            if review is not None and (review.mode == "manual" or step.review_auto_passed):
                round_ = step.review_round if step.review_auto_passed else step.review_round + 1
                deadline = d.now + timedelta(seconds=review.timeout_s)
                d.emit(ReviewRequested(step=step.name, round=round_, deadline_at=deadline))
            else:  # a step, or a gate whose automatic reviewer runs as work
                _dispatch(d, step, step.attempts + 1)


def _sticky_provider(job: JobSnapshot, capability: str) -> str | None:
    """The provider an earlier step of this job used for the same capability, to keep a style."""
    for other in job.steps.values():
        if other.capability == capability and other.status == StepStatus.SUCCEEDED and other.provider:
            return other.provider
    return None


def _dispatch(d: _Decision, step: StepSnapshot, attempt: int, not_before: datetime | None = None) -> None:
    job = d.job
    if step.given:  # an upload: no work to do, its files are the step's outputs
        d.emit(
            StepSucceeded(
                step=step.name,
                attempt=attempt,
                work_id="",
                outputs=list(step.given),
                provider="upload",
                model="",
                started_at=d.now,
                finished_at=d.now,
            )
        )
        return
    inputs: dict[str, Artifact] = {
        f"{need}.{artifact.name}": artifact for need in step.needs for artifact in job.steps[need].outputs
    }
    # The step's own parameters (its share of the input, bound by the kind), never the whole input.
    params: dict[str, Any] = {"title": job.title, "kind": job.kind, **step.params}
    if step.feedback:  # a reviewer sent it back: what to do differently this time
        params["feedback"] = step.feedback
    if step.review is not None:
        params["checks"] = step.review.checks
    sticky = _sticky_provider(job, step.capability)
    if sticky:
        params["sticky_provider"] = sticky
    d.emit(
        StepDispatched(
            step=step.name,
            attempt=attempt,
            work_id=work_id(job.id, step.name, attempt),
            capability=step.capability,
            params=params,
            inputs=inputs,
            not_before=not_before,
            deadline_at=step_deadline(step, not_before or d.now),
            priority=job.priority,
        )
    )
