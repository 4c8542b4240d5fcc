"""Work items (orchestrator → workers) and work reports (workers → orchestrator)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from atelier_contracts.common import Artifact, BudgetAlert, ProviderAttempt, Usage


class WorkItem(msgspec.Struct, frozen=True, kw_only=True, tag="work_item"):
    """One attempt at one step of one job, for the worker pool that serves ``capability``.

    ``work_id`` is ``<job>.<step>.<attempt>``: the NATS message id, so a re-dispatch of the
    same attempt is de-duplicated by JetStream and a redelivered report is recognised.
    """

    work_id: str
    job_id: str
    tenant: str
    step: str
    attempt: int
    capability: str
    params: dict[str, Any] = {}
    inputs: dict[str, Artifact] = {}
    deadline: datetime | None = None
    not_before: datetime | None = None
    """A scheduled retry: workers hold the item until then (a delayed redelivery)."""
    priority: int = 0
    dispatch_seq: int = 0
    """Stream sequence of the commit that dispatched it: a cancel from a later commit stops it,
    one from an earlier commit (delivered late) does not."""


class WorkStarted(msgspec.Struct, frozen=True, kw_only=True, tag="work_started"):
    """A worker picked the item up; the step is running."""

    work_id: str
    job_id: str
    step: str
    attempt: int
    started_at: datetime
    worker: str = ""
    delivery: int = 1
    """JetStream's delivery count: above 1, a worker before this one vanished mid-step."""


class WorkSucceeded(msgspec.Struct, frozen=True, kw_only=True, tag="work_succeeded"):
    work_id: str
    job_id: str
    step: str
    attempt: int
    outputs: list[Artifact]
    provider: str
    model: str
    started_at: datetime
    finished_at: datetime
    usage: Usage = Usage()
    attempts: list[ProviderAttempt] = []
    """Every provider tried for this result, in order; the last one answered."""
    fallbacks: list[str] = []
    """Why each earlier provider was passed over, e.g. "fell back to b/m2: a/m1 answered 429"."""
    alerts: list[BudgetAlert] = []
    """Budgets whose alert line this work's spending crossed."""
    data: dict[str, Any] = {}
    """A small structured result the job decides on (a planning step's items); files go in
    ``outputs``."""


class WorkFailed(msgspec.Struct, frozen=True, kw_only=True, tag="work_failed"):
    work_id: str
    job_id: str
    step: str
    attempt: int
    code: str
    message: str
    retryable: bool
    started_at: datetime
    finished_at: datetime
    provider: str = ""
    model: str = ""
    attempts: list[ProviderAttempt] = []
    retry_after_s: float | None = None
    """The earliest a retry could succeed (e.g. every provider is cooling down)."""
    alerts: list[BudgetAlert] = []


WorkReport = WorkStarted | WorkSucceeded | WorkFailed
"""What a worker says about a work item: that it started it, and how it ended."""
