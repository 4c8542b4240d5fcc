"""Progress of a running step: a fraction done and a message, the latest value per step.

Ticks are not events. A worker keeps the latest tick of each step it runs and puts it at most
every ``PROGRESS_EVERY_S`` into a KV bucket (``PROGRESS_BUCKET``) that keeps one value per step,
so a 20-minute encode costs the job's log nothing and the bucket one message per step. The put
is a publish on ``$KV.ATELIER_PROGRESS.<job>.<key>``: the gateway's streams hear it there as it
happens (a core subscription, no consumer), and a stream that opens later reads the current
value. ``docs/streams.md`` has the measurement behind this.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import msgspec

PROGRESS_BUCKET = "ATELIER_PROGRESS"
PROGRESS_TTL_S = 24 * 3600.0
"""A step's last tick is forgotten a day after it was put (a finished step's is not needed)."""
PROGRESS_EVERY_S = 0.5
"""At most one put per step this often: the tick a stream shows is never older than this."""

_KEY_SAFE = re.compile(r"[-_=A-Za-z0-9]{1,64}")


class StepProgress(msgspec.Struct, frozen=True, kw_only=True):
    """How far one attempt of one step has come (``fraction`` 0..1, ``message`` for people)."""

    job_id: str
    step: str
    attempt: int
    fraction: float | None
    message: str = ""
    at: datetime


progress_decoder = msgspec.json.Decoder(StepProgress)


def progress_key(job_id: str, step: str) -> str:
    """The KV key of a step's progress: ``<job>.<step>``, the step hashed when it is not a safe
    key token (steps of a fan-out may hold dots)."""
    token = step if _KEY_SAFE.fullmatch(step) else hashlib.sha256(step.encode()).hexdigest()[:24]
    return f"{job_id}.{token}"


def progress_subject(job_id: str) -> str:
    """Where every put of a job's progress is published (a wildcard over its steps)."""
    return f"$KV.{PROGRESS_BUCKET}.{job_id}.*"
