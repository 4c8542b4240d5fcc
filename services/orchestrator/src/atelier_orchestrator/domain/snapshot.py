"""The job aggregate's state: the orchestrator's fold of a job's events (``evolve``).

Private to the orchestrator: it holds what deciding needs (recent causes, attempt bases, waits,
which work it already ignored). Other services read the public view, ``atelier_contracts.snapshot
.JobView``, which the read model's JSON also decodes into (the view's fields are a subset).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from atelier_contracts.common import Artifact
from atelier_contracts.snapshot import JobStatus, JobView, StepStatus, StepView


class StepSnapshot(StepView, frozen=True, kw_only=True):
    """A step as the aggregate holds it: its public view, and what deciding needs besides."""

    params: dict[str, Any] = {}
    max_attempts: int = 3
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 300.0
    planner: str | None = None
    given: tuple[Artifact, ...] = ()
    """An upload's files: the step succeeds with them, never runs (``StepSpec.given``)."""
    review_auto_passed: bool = False
    """A ``both`` gate whose automatic reviewer approved this round: a person is next."""
    planned_by: str | None = None
    """The step whose result planned this one (a new plan of that step replaces it)."""
    calls_recorded: int = 0
    """The attempt whose provider calls are in the log (so a decision made again adds none)."""
    work_id: str | None = None
    deliveries: int = 1
    worker: str = ""
    """The worker running the step (``pool@host:pid``)."""
    attempt_base: int = 0
    """``attempts`` when the current run of this step began (a requeue or a retry request)."""
    waits: int = 0
    """Waits for providers in a row (every one cooling down or at its limits) since the last try."""

    @property
    def run_attempts(self) -> int:
        return self.attempts - self.attempt_base


class JobSnapshot(JobView, frozen=True, kw_only=True):
    """A job as the aggregate holds it: its public view, and what deciding needs besides."""

    steps: dict[str, StepSnapshot] = {}  # type: ignore[assignment]
    recent_causes: list[str] = []
    """Message ids of the latest commits' causes, so a redelivered command is not decided twice."""
    ignored_work: list[str] = []
    """Work ids whose late reports were recorded as ignored (so a redelivery is not recorded twice)."""
    review_waiting_since: datetime | None = None
    """Since when a gate waits for a person: the job's deadline moves on by that wait."""

    @property
    def next_deadline(self) -> datetime | None:
        """The earliest deadline still ahead of a live job: its own, or a dispatched step's."""
        if self.status in JobStatus.TERMINAL:
            return None
        live = (StepStatus.DISPATCHED, StepStatus.RUNNING, StepStatus.AWAITING_REVIEW)
        # The deadline first: most steps have none (pending ones), and it is the cheaper test.
        times = [s.deadline_at for s in self.steps.values() if s.deadline_at and s.status in live]
        if self.deadline_at and self.review_waiting_since is None:  # paused while a person reviews
            times.append(self.deadline_at)
        return min(times, default=None)


snapshot_decoder = msgspec.json.Decoder(JobSnapshot)
step_decoder = msgspec.json.Decoder(StepSnapshot)


def view_of(job: JobSnapshot) -> JobView:
    """The public view of the job, as the API and other services see it."""
    return msgspec.convert(msgspec.to_builtins(job), JobView)
