"""Commands: what clients ask the orchestrator to do (imperative names).

Published by the gateway on ``atelier.cmd.<job_id>`` inside an :class:`Envelope`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from atelier_contracts.common import Origin
from atelier_contracts.snapshot import JobView


class SubmitJob(msgspec.Struct, frozen=True, kw_only=True, tag="submit_job"):
    """Create a job of a known kind. The job id comes with the envelope."""

    kind: str
    title: str
    input: dict[str, Any]
    priority: int = 0
    tags: list[str] = []
    deadline_s: float | None = None
    """Whole-job deadline from submission; None takes the kind's default."""
    request_hash: str = ""
    """Hash of the HTTP request that created the job, to tell a reused idempotency key."""
    origin: Origin | None = None


class CancelJob(msgspec.Struct, frozen=True, kw_only=True, tag="cancel_job"):
    """Stop queued and running work; late results are recorded as ignored."""

    reason: str = ""


class RequeueJob(msgspec.Struct, frozen=True, kw_only=True, tag="requeue_job"):
    """Run a failed or cancelled job again, keeping the steps that succeeded."""


class RetryStep(msgspec.Struct, frozen=True, kw_only=True, tag="retry_step"):
    """Run one failed (or cancelled) step again, e.g. only the cover, and what depends on it."""

    step: str


class ReviewStep(msgspec.Struct, frozen=True, kw_only=True, tag="review_step"):
    """A person's verdict on a review gate waiting for one."""

    step: str
    verdict: Literal["approve", "reject"]
    feedback: str = ""
    reviewer: str = ""


class UpdateJob(msgspec.Struct, frozen=True, kw_only=True, tag="update_job"):
    """Change a job's title, priority or tags; a field left None stays as it is."""

    title: str | None = None
    priority: int | None = None
    tags: list[str] | None = None


class DeleteJob(msgspec.Struct, frozen=True, kw_only=True, tag="delete_job"):
    """Tombstone the job: gone from lists and reads; its blobs are released by a later clean-up."""


class ExpireDeadlines(msgspec.Struct, frozen=True, kw_only=True, tag="expire_deadlines"):
    """Sent by the orchestrator's sweeper: time out steps and jobs whose deadline has passed."""


class CommandOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The orchestrator's answer to a command that asked for one (see ``REPLY_HEADER``)."""

    msg_id: str
    job_id: str
    accepted: bool
    code: str = ""
    """An error code from ``errors.ERROR_CODES`` when the command was refused."""
    message: str = ""
    events: list[str] = []
    job: JobView | None = None
    """The job after the decision (accepted commands), so the caller need not wait for SQL."""


Command = (
    SubmitJob | CancelJob | RequeueJob | RetryStep | ReviewStep | UpdateJob | DeleteJob | ExpireDeadlines
)
"""The union of all commands."""
