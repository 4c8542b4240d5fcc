"""Job events: the facts of a job's life (past-tense names).

The orchestrator appends them to ``atelier.job.<job_id>`` grouped in a :class:`Commit`: the
events one decision produced, written atomically with one expected-sequence check.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from atelier_contracts.common import (
    Artifact,
    BudgetAlert,
    ErrorInfo,
    Origin,
    ProviderAttempt,
    ReviewSpec,
    Usage,
)


class StepSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A step of a pipeline: what it needs and what it runs on."""

    name: str
    capability: str
    needs: tuple[str, ...] = ()
    params: dict[str, Any] = {}
    max_attempts: int = 3
    backoff_s: float = 1.0
    """First retry delay; doubles each attempt (with jitter) up to ``backoff_max_s``."""
    backoff_max_s: float = 60.0
    timeout_s: float = 300.0
    """Step deadline, counted from dispatch (or from the scheduled retry time)."""
    planner: str | None = None
    """A step whose result plans more steps: the name of its kind's planner (``JobKind.planners``)."""
    review: ReviewSpec | None = None
    """A review gate (``ReviewSpec``): waits for a verdict on the steps it needs."""
    given: tuple[Artifact, ...] = ()
    """A step whose outputs are given with the job (an upload, ``capability`` ``"upload"``): it
    succeeds when the job is submitted and is never dispatched; the steps that need it get the
    files as their inputs, like any step's outputs."""


class JobSubmitted(msgspec.Struct, frozen=True, kw_only=True, tag="job_submitted"):
    kind: str
    title: str
    input: dict[str, Any]
    priority: int
    tags: list[str]
    steps: list[StepSpec]
    partial_ready_after: str | None = None
    deadline_at: datetime | None = None
    request_hash: str = ""
    origin: Origin | None = None


class StepDispatched(msgspec.Struct, frozen=True, kw_only=True, tag="step_dispatched"):
    step: str
    attempt: int
    work_id: str
    capability: str
    params: dict[str, Any] = {}
    inputs: dict[str, Artifact] = {}
    not_before: datetime | None = None
    deadline_at: datetime | None = None
    priority: int = 0


class StepStarted(msgspec.Struct, frozen=True, kw_only=True, tag="step_started"):
    step: str
    attempt: int
    work_id: str
    started_at: datetime
    worker: str = ""


class StepRedelivered(msgspec.Struct, frozen=True, kw_only=True, tag="step_redelivered"):
    """The worker running the step vanished (its heartbeats stopped); another one took it over."""

    step: str
    attempt: int
    work_id: str
    delivery: int
    worker: str = ""


class StepSucceeded(msgspec.Struct, frozen=True, kw_only=True, tag="step_succeeded"):
    step: str
    attempt: int
    work_id: str
    outputs: list[Artifact]
    provider: str
    model: str
    started_at: datetime
    finished_at: datetime
    usage: Usage = Usage()
    fallbacks: list[str] = []


class ProviderCalled(msgspec.Struct, frozen=True, kw_only=True, tag="provider_called"):
    """One provider call (or skip) made for a step attempt: who, how long, what it cost, why it failed."""

    step: str
    attempt: int
    capability: str
    call: ProviderAttempt


class BudgetAlerted(msgspec.Struct, frozen=True, kw_only=True, tag="budget_alerted"):
    """This step's spending took a budget (the tenant's or the project's) past its alert share."""

    step: str
    attempt: int
    alert: BudgetAlert


class StepFailed(msgspec.Struct, frozen=True, kw_only=True, tag="step_failed"):
    """A step attempt failed; ``will_retry`` says whether another attempt follows."""

    step: str
    attempt: int
    work_id: str
    error: ErrorInfo
    will_retry: bool


class StepRetryScheduled(msgspec.Struct, frozen=True, kw_only=True, tag="step_retry_scheduled"):
    """The next attempt of a failed step, not before ``due_at`` (exponential backoff, jitter)."""

    step: str
    attempt: int
    due_at: datetime
    delay_s: float
    waiting: bool = False
    """The failed attempt called no provider (all cooling down or at their limits): it does not
    count against the step's ``max_attempts``."""


class StepCancelled(msgspec.Struct, frozen=True, kw_only=True, tag="step_cancelled"):
    step: str
    reason: str = ""


class StepSkipped(msgspec.Struct, frozen=True, kw_only=True, tag="step_skipped"):
    """A step that will not run because a step it needs failed for good."""

    step: str
    because: str


class StepRetryRequested(msgspec.Struct, frozen=True, kw_only=True, tag="step_retry_requested"):
    """A user asked for one step again; it and the steps after it run anew."""

    step: str
    reset: list[str]
    deadline_at: datetime | None = None
    """The job's new deadline: a regenerated asset gets a full run's time."""


class ReportIgnored(msgspec.Struct, frozen=True, kw_only=True, tag="report_ignored"):
    """A late result of work that no longer counts (its job was cancelled, its attempt superseded)."""

    work_id: str
    step: str
    attempt: int
    outcome: str
    reason: str


class JobStarted(msgspec.Struct, frozen=True, kw_only=True, tag="job_started"):
    pass


class JobPartialReady(msgspec.Struct, frozen=True, kw_only=True, tag="job_partial_ready"):
    """The job's primary output exists; other assets are still pending (or failed)."""

    ready_steps: list[str]


class JobSucceeded(msgspec.Struct, frozen=True, kw_only=True, tag="job_succeeded"):
    pass


class JobFailed(msgspec.Struct, frozen=True, kw_only=True, tag="job_failed"):
    error: ErrorInfo


class JobCancelled(msgspec.Struct, frozen=True, kw_only=True, tag="job_cancelled"):
    reason: str = ""


class JobRequeued(msgspec.Struct, frozen=True, kw_only=True, tag="job_requeued"):
    """A failed or cancelled job runs again (its run ``attempt``); succeeded steps are kept."""

    attempt: int
    reset: list[str]
    deadline_at: datetime | None = None


class JobUpdated(msgspec.Struct, frozen=True, kw_only=True, tag="job_updated"):
    title: str | None = None
    priority: int | None = None
    tags: list[str] | None = None


class JobDeleted(msgspec.Struct, frozen=True, kw_only=True, tag="job_deleted"):
    pass


class StepsPlanned(msgspec.Struct, frozen=True, kw_only=True, tag="steps_planned"):
    """Steps a step's result planned (fan-out), and the steps that now need them too. A large
    plan comes in several of these, across commits; the planning step succeeds after the last."""

    by: str
    steps: list[StepSpec] = []
    """New steps; or, for a step this planner planned before (its plan made again after the step
    ran anew), its new spec: it replaces the old while that waits to run."""
    needs: dict[str, list[str]] = {}
    """Existing step → planned steps it now needs as well (e.g. a package needs every image)."""
    drop: list[str] = []
    """Steps an earlier plan of ``by`` made that the new plan has no more (removed, and from
    every step's needs)."""

    def halves(self) -> tuple[StepsPlanned, StepsPlanned]:
        """Two events that together say what this one says, for commits of bounded size: each
        half's steps, the needs on them, and the drop in the first."""
        cut = len(self.steps) // 2
        return self._part(self.steps[:cut], self.drop), self._part(self.steps[cut:], [])

    def _part(self, steps: list[StepSpec], drop: list[str]) -> StepsPlanned:
        names = {s.name for s in steps}
        needs = {k: kept for k, v in self.needs.items() if (kept := [n for n in v if n in names])}
        return StepsPlanned(by=self.by, steps=steps, needs=needs, drop=drop)


class ReviewRequested(msgspec.Struct, frozen=True, kw_only=True, tag="review_requested"):
    """A gate waits for a person's verdict, until ``deadline_at`` (then its timeout policy)."""

    step: str
    round: int
    deadline_at: datetime


class StepReviewed(msgspec.Struct, frozen=True, kw_only=True, tag="step_reviewed"):
    """A verdict on a gate. Approved and ``final``: the gate succeeds; approved by the automatic
    reviewer of a ``both`` gate: a person reviews next; rejected: ``reset`` runs again with the
    feedback (an empty ``reset``: the gate fails after this)."""

    step: str
    round: int
    verdict: str
    feedback: str = ""
    reviewer: str = ""
    auto: bool = False
    final: bool = True
    reset: list[str] = []


JobEvent = (
    JobSubmitted
    | StepsPlanned
    | ReviewRequested
    | StepReviewed
    | StepDispatched
    | StepStarted
    | StepRedelivered
    | StepSucceeded
    | ProviderCalled
    | BudgetAlerted
    | StepFailed
    | StepRetryScheduled
    | StepCancelled
    | StepSkipped
    | StepRetryRequested
    | ReportIgnored
    | JobStarted
    | JobPartialReady
    | JobSucceeded
    | JobFailed
    | JobCancelled
    | JobRequeued
    | JobUpdated
    | JobDeleted
)


class EventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One event with its identity: a stable id and its position inside its commit."""

    event_id: str
    event: JobEvent


class Commit(msgspec.Struct, frozen=True, kw_only=True):
    """The events of one decision, appended as one JetStream message.

    ``prev_seq`` is the stream sequence of the job's previous commit (0 for the first): the
    expected-last-subject-sequence the append was made with. Projections use it to apply
    commits in order and to skip ones they already applied.
    """

    commit_id: str
    job_id: str
    tenant: str
    causation_id: str
    correlation_id: str
    prev_seq: int
    at: datetime
    events: list[EventRecord]
    schema_version: int = 1
