"""The public view of a job (``JobView``), its statuses, and the projector's notices.

The orchestrator's own state of a job (``atelier_orchestrator.domain.snapshot.JobSnapshot``) is
private to it; what crosses a service boundary is this view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from atelier_contracts.common import Artifact, ErrorInfo, Origin, ReviewRecord, ReviewSpec, Usage


class JobStatus:
    QUEUED = "queued"
    RUNNING = "running"
    PARTIAL_READY = "partial_ready"
    AWAITING_REVIEW = "awaiting_review"
    """A review gate waits for a person (the job's deadline is paused meanwhile)."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
    ALL = (QUEUED, RUNNING, PARTIAL_READY, AWAITING_REVIEW, SUCCEEDED, FAILED, CANCELLED)


class StepStatus:
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    AWAITING_REVIEW = "awaiting_review"


class StepView(msgspec.Struct, frozen=True, kw_only=True):
    """A step as the API shows it (the public read model; the orchestrator's state holds more)."""

    name: str
    capability: str
    needs: tuple[str, ...] = ()
    status: str = StepStatus.PENDING
    attempts: int = 0
    outputs: list[Artifact] = []
    provider: str | None = None
    model: str | None = None
    usage: Usage | None = None
    fallbacks: list[str] = []
    last_error: ErrorInfo | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    not_before: datetime | None = None
    """When a scheduled retry may start."""
    deadline_at: datetime | None = None
    review: ReviewSpec | None = None
    review_round: int = 0
    feedback: str = ""
    """What a reviewer asked of this step when it sent it back."""


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """A job as the API shows it: the documented public read model (``docs/architecture.md``).

    The projector writes the orchestrator's whole state as JSON; this view decodes only its
    public fields, so the aggregate's internals can change without a change here."""

    id: str
    tenant: str
    kind: str
    title: str
    input: dict[str, Any]
    priority: int = 0
    tags: list[str] = []
    status: str = JobStatus.QUEUED
    steps: dict[str, StepView] = {}
    created_at: datetime
    updated_at: datetime
    partial_ready_after: str | None = None
    attempts: int = 1
    last_error: ErrorInfo | None = None
    finished_at: datetime | None = None
    deadline_at: datetime | None = None
    request_hash: str = ""
    """Hash of the request that created the job, to tell a reused idempotency key."""
    deleted: bool = False
    reviews: list[ReviewRecord] = []
    origin: Origin | None = None
    """The session round that started the job, if one did."""
    version: int = 0
    """Stream sequence of the last commit folded in."""

    @property
    def model_used(self) -> dict[str, str]:
        return {
            name: f"{step.provider}/{step.model}"
            for name, step in self.steps.items()
            if step.status == StepStatus.SUCCEEDED and step.provider
        }


view_decoder = msgspec.json.Decoder(JobView)
step_view_decoder = msgspec.json.Decoder(StepView)


class Projected(msgspec.Struct, frozen=True, kw_only=True):
    """Published on ``PROJECTED_SUBJECT`` (core NATS) after each projector transaction: the
    sequence each job's read-model row now stands at, so readers can wait for their writes."""

    jobs: dict[str, int]
    """Job id (or session id, from the session projector) → the sequence its row now holds."""


projected_decoder = msgspec.json.Decoder(Projected)
