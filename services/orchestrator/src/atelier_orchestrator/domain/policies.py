"""Retry and deadline policy: which failures are worth another attempt, and when."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from atelier_orchestrator.domain.snapshot import StepSnapshot

FINAL_CODES = frozenset({"prompt_invalid", "input_invalid", "unknown_job_kind", "budget_exceeded"})
"""Failures no retry can mend: the same input fails the same way."""


def is_retryable(code: str, reported_retryable: bool) -> bool:
    return reported_retryable and code not in FINAL_CODES


def backoff_delay(step: StepSnapshot, work_id: str) -> float:
    """Exponential backoff with "equal jitter": half fixed, half spread by the work id.

    The jitter comes from a hash, not a random source, so ``decide`` stays pure and a replay
    schedules the same retry at the same time.
    """
    ceiling = min(step.backoff_max_s, step.backoff_s * 2 ** max(step.run_attempts - 1, 0))
    spread = int(hashlib.sha256(work_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return round(float(ceiling / 2 + ceiling / 2 * spread), 3)


def step_deadline(step: StepSnapshot, start: datetime) -> datetime:
    return start + timedelta(seconds=step.timeout_s)
