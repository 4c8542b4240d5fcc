"""Value types shared by commands, events, work items and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
