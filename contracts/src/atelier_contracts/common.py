"""Value types shared by commands, events, work items and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec


class BlobRef(msgspec.Struct, frozen=True, kw_only=True):
    """A content-addressed blob: ``key`` is the SHA-256 of its bytes."""

    key: str
    size: int
    content_type: str


class Artifact(msgspec.Struct, frozen=True, kw_only=True):
    """A named output of a step. ``kind`` says what a user sees it as (text, image, ...)."""

    name: str
    kind: str
    blob: BlobRef
    meta: dict[str, Any] = {}


class Origin(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What started a job other than a client: a session's round or a schedule's firing (its end
    goes back to the session as ``EndRound``, to the schedule as ``EndFiring``)."""

    session: str = ""
    round: int = 0
    schedule: str = ""
    fire_time: datetime | None = None


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A failure as users see it: a stable code, a message and when it happened."""

    code: str
    message: str
    at: datetime
    retryable: bool = False


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider call consumed, in the units it bills."""

    units: dict[str, float] = {}
    cost_usd: float = 0.0


class BudgetAlert(msgspec.Struct, frozen=True, kw_only=True):
    """A budget crossed its alert share (80 %) in this period; raised once per scope and period."""

    tenant: str
    project: str = ""
    """Empty for the tenant's own budget."""
    period: str
    spent_usd: float
    limit_usd: float


class ProviderAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One call (or a skip) of one provider for one work item, as the router saw it."""

    provider: str
    model: str
    outcome: str
    """``succeeded``, ``failed`` or ``skipped`` (cooling down, over its limits)."""
    started_at: datetime
    latency_ms: float = 0.0
    error_class: str = ""
    message: str = ""
    usage: Usage = Usage()


ReviewMode = Literal["manual", "auto", "both"]
TimeoutPolicy = Literal["approve", "reject", "fail"]


class ReviewSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A step that is a review gate: it waits for a verdict on the steps it needs.

    ``manual``: a person decides (``POST /v1/jobs/{id}/steps/{step}/review``); ``auto``: a reviewer
    capability decides (the step runs as work, e.g. ``review.auto``); ``both``: auto first, then a
    person. A rejection sends the reviewed steps (the gate's needs but ``keeps``) and what depends
    on them back, with the feedback in their input, and the gate waits again. Waiting for a person
    does not count against the job's deadline; the gate has its own."""

    mode: ReviewMode = "manual"
    keeps: tuple[str, ...] = ()
    """Needs of the gate that are context, not under review (a rejection leaves them)."""
    timeout_s: float = 86400.0
    """How long a person may take; then ``on_timeout`` decides."""
    on_timeout: TimeoutPolicy = "fail"
    max_rounds: int = 5
    """Rejections after which the gate fails instead of sending the steps back again."""
    checks: dict[str, Any] = {}
    """What an automatic reviewer checks (e.g. ``min_side``, ``brightness``, ``min_words``)."""


class ReviewRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One verdict on a gate: who, when, which round, and why."""

    step: str
    round: int
    verdict: Literal["approve", "reject"]
    feedback: str
    reviewer: str
    auto: bool
    at: datetime
